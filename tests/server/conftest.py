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

from nanhu.benchmarks.synth import music_like, write_audio
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from nanhu.server.app import create_server
from nanhu.server.auth import KeyFile
from nanhu.server.client import NanhuClient
from nanhu.server.service import Limits
from nanhu.server.webhooks import WebhookSettings

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
    "label_c": ("label-c", ["register"]),
    "vids": ("vids", ["screen"]),
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
                                 limits=Limits(refresh_interval_s=0.0, max_concurrent=8),
                                 webhooks=WebhookSettings(backoff_s=0.05, poll_s=0.2))
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


# --- certificates ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA, a server certificate for localhost and 127.0.0.1 signed by it, a
    client certificate signed by it, and a client certificate signed by another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer, issuer_key, *, ca: bool = False, san=None, client: bool = False):
    """(certificate, key) for ``subject``, signed by ``issuer_key`` (self-signed when None)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer is not None else _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    return certificate, key


def _write_pem(folder: Path, name: str, certificate, key) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    pytest.importorskip("cryptography", reason="the TLS tests make certificates with cryptography")
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = _certificate("nanhu test CA", None, None, ca=True)
    server_cert, server_key = _certificate("localhost", ca, ca_key, san=True)
    client_cert, client_key = _certificate("platform-tube", ca, ca_key, client=True)
    rogue_ca, rogue_ca_key = _certificate("someone else's CA", None, None, ca=True)
    rogue_cert, rogue_key = _certificate("platform-tube", rogue_ca, rogue_ca_key, client=True)
    ca_path, _ = _write_pem(folder, "ca", ca, ca_key)
    return Pki(ca_path, *_write_pem(folder, "server", server_cert, server_key),
               *_write_pem(folder, "client", client_cert, client_key),
               *_write_pem(folder, "rogue", rogue_cert, rogue_key))


# --- the review page -----------------------------------------------------------------------------
REVIEW_KEYS = {  # name: (tenant, roles)
    "label_a": ("label-a", ["register"]),
    "label_b": ("label-b", ["register"]),
    "tube": ("tube", ["screen"]),
    "vids": ("vids", ["screen"]),
}


@dataclass
class Review:
    """A server with the review page on, and the claims its screenings left:
    ``claims["film_tube"]`` (tube's upload of label-a's film: audio+video, with pictures),
    ``claims["film_vids"]`` (the same film uploaded by vids), ``claims["song_tube"]`` (tube's
    audio-only upload of label-b's song)."""

    server: object
    catalog: Path
    keys: dict
    claims: dict

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"


@pytest.fixture(scope="session")
def review(tmp_path_factory, kit):
    root = tmp_path_factory.mktemp("review")
    keys_file = KeyFile(root / "keys.json")
    keys = {name: keys_file.add(tenant, roles)[1] for name, (tenant, roles) in REVIEW_KEYS.items()}
    keys_file.save()
    server, port = create_server(root / "catalog", workers=1, auth=root / "keys.json",
                                 http="127.0.0.1:0", limits=Limits(refresh_interval_s=0.0))
    server.start()
    address = f"127.0.0.1:{port}"
    music = song(901, 16.0)
    film = kit.write_video(root / "film.mp4", 16.0, audio=music, size=(90, 160))
    # MPEG-4 part 2 puts a key frame every 12 frames (3 s here): pictures come from those
    upload = kit.write_video(root / "upload.mp4", 10.0, audio=music[: 10 * RATE], size=(90, 160),
                             codec="mpeg4")
    tune = song(902, 20.0)
    clients = {name: NanhuClient(address, key=key, timeout=60) for name, key in keys.items()}
    try:
        clients["label_a"].register_file(film, "film-a", title="Film A", policy={"action": "block"})
        clients["label_b"].register_fingerprint(fingerprint_media(write(root / "tune.wav", tune)),
                                                "tune-b", title="Tune B",
                                                policy={"action": "track"})
        claims = {}
        for name, who, path, upload_id in (("film_tube", "tube", upload, "up-1"),
                                           ("film_vids", "vids", upload, "vid-1"),
                                           ("song_tube", "tube",
                                            write(root / "tune-copy.wav", tune[3 * RATE : 13 * RATE]),
                                            "up-2")):
            result = clients[who].screen_file(path, upload_id=upload_id)
            (claims[name],) = {m["claim_id"] for m in result["matches"] if m.get("claim_id")}
    finally:
        for client in clients.values():
            client.close()
    yield Review(server=server, catalog=root / "catalog", keys=keys, claims=claims)
    assert server.stop(5).wait(30)
