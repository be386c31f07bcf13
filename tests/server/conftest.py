"""A real Nanhu server on an ephemeral loopback port, with generated music and API keys.

Works are generated melodies (``benchmarks.synth.music_like``); each test registers its own
seeds, so tests share one server without seeing each other's works.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from benchmarks.synth import music_like, write_audio
from engine.fingerprint import fingerprint_media
from proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from server.app import create_server
from server.auth import KeyFile
from server.client import NanhuClient
from server.service import Limits

RATE = 22050


def song(seed: int, seconds: float = 30.0) -> np.ndarray:
    return music_like(seconds, seed=seed, sample_rate=RATE)


def write(path: Path, samples: np.ndarray) -> Path:
    return write_audio(path, samples, RATE)


def chunks(kind, header, data: bytes, *, size: int = 64 * 1024, gate: threading.Event | None = None,
           gate_after: int = 1):
    """A Register/Screen request stream; with ``gate``, it stalls after ``gate_after`` data chunks."""
    yield kind(header=header)
    for number, start in enumerate(range(0, len(data), size)):
        if gate is not None and number == gate_after:
            gate.wait(30)
        yield kind(data=data[start : start + size])


@dataclass
class Env:
    server: object
    port: int
    catalog: Path
    media: Path
    keys: dict = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, who: str | None = None, **kwargs) -> NanhuClient:
        return NanhuClient(self.address, key=self.keys.get(who), timeout=30, **kwargs)

    def stubs(self):
        channel = grpc.insecure_channel(self.address)
        return channel, pb_grpc.ScreeningStub(channel), pb_grpc.CatalogStub(channel)

    def metadata(self, who: str) -> tuple:
        return (("x-api-key", self.keys[who]),)

    # helpers for tests (test modules cannot import conftest under --import-mode=importlib)
    def song(self, seed: int, seconds: float = 30.0) -> np.ndarray:
        return song(seed, seconds)

    def write(self, name: str, samples: np.ndarray) -> Path:
        return write(self.media / name, samples)

    def fingerprint(self, path: Path, *, query: bool = False):
        return fingerprint_media(path, query=query)

    chunks = staticmethod(chunks)


KEYS = {  # name: (tenant, roles)
    "admin": ("ops", ["admin"]),
    "platform": ("tube", ["screen"]),
    "label_a": ("label-a", ["register"]),
    "label_b": ("label-b", ["register"]),
    "label_a_screen": ("label-a", ["register", "screen"]),
}


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """The shared server: auth on, catalog re-read on every call, one fingerprinting worker."""
    root = tmp_path_factory.mktemp("server")
    keys_file = KeyFile(root / "keys.json")
    keys = {name: keys_file.add(tenant, roles)[1] for name, (tenant, roles) in KEYS.items()}
    revoked_id, keys["revoked"] = keys_file.add("tube", ["screen"])
    keys_file.revoke(revoked_id)
    keys_file.save()
    server, port = create_server(root / "catalog", workers=1, auth=root / "keys.json",
                                 limits=Limits(refresh_interval_s=0.0, max_concurrent=8))
    server.start()
    media = root / "media"
    media.mkdir()
    yield Env(server=server, port=port, catalog=root / "catalog", media=media, keys=keys)
    assert server.stop(5).wait(30)


@pytest.fixture
def small_server(tmp_path):
    """Factory: a server without auth and with the given limits, on its own catalog."""
    started = []

    def start(**limits) -> Env:
        root = tmp_path / f"small{len(started)}"
        server, port = create_server(root / "catalog", workers=1, limits=Limits(**limits))
        server.start()
        (root / "media").mkdir()
        started.append(server)
        return Env(server=server, port=port, catalog=root / "catalog", media=root / "media")

    yield start
    for server in started:
        assert server.stop(0).wait(30)
