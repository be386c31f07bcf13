"""How much recording claims adds to a screening: a small timing script, not part of the suite.

    .venv/bin/python -m nanhu.benchmarks.claims_latency [--works 20] [--calls 60] [--dir DIR]

Builds a catalog of generated songs, two of which (A and B) are copied by two 10 s query
fingerprints, and serves it (``create_server``, one worker). It screens the queries over gRPC
(``ScreenFingerprint``), alternating A and B, in two phases: first A's policy blocks (each of
its screenings records a claim: one SQLite transaction with ``synchronous=FULL`` in
``claims.sqlite``, committed before the response) and B's is disabled (the same matching and
judging, action ``none``, nothing written); then the other way round, so that each series holds
both songs and what differs is the claim. Prints p50/p90 with and without, their difference and
ratio, and the cost of ``ClaimStore.record`` alone, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 22050


def _summary(values: list[float]) -> dict:
    data = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(data, 50)), 2),
            "p90_ms": round(float(np.percentile(data, 90)), 2), "n": int(data.size)}


def build(folder: Path, works: int) -> tuple[Path, dict]:
    """The catalog (works ``song-a``, ``song-b`` and fillers) and a query fingerprint per song."""
    from nanhu.benchmarks.synth import music_like, write_audio
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.fingerprint import fingerprint_media

    catalog = folder / "catalog"
    queries = {}
    with Catalog(catalog, writable=True, create=True) as writer:
        for n in range(works):
            name = {0: "song-a", 1: "song-b"}.get(n, f"filler-{n}")
            samples = music_like(30.0, seed=6000 + n, sample_rate=RATE)
            fp = fingerprint_media(write_audio(folder / f"{name}.wav", samples, RATE), video=False)
            writer.add(name, fp, title=name, owner="label")
            if n < 2:
                clip = write_audio(folder / f"q-{name}.wav", samples[8 * RATE : 18 * RATE], RATE)
                queries[name] = fingerprint_media(clip, query=True, video=False)
        writer.commit()
    return catalog, queries


def screenings(catalog: Path, queries: dict, calls: int) -> dict[str, list[float]]:
    """Milliseconds per ``ScreenFingerprint`` call, with and without a claim recorded."""
    from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
    from nanhu.server import convert
    from nanhu.server.app import create_server
    from nanhu.server.client import NanhuClient

    server, port = create_server(catalog, workers=1)
    server.start()
    out: dict[str, list[float]] = {"claims": [], "no_claims": []}
    try:
        with NanhuClient(f"127.0.0.1:{port}") as client:
            messages = {k: convert.fingerprint_to_proto(fp) for k, fp in queries.items()}
            for claiming in ("song-a", "song-b"):
                for name in queries:
                    client.set_policy(name, "block", enabled=name == claiming)
                for n in range(calls + 4):
                    for name, message in messages.items():
                        request = pb.ScreenFingerprintRequest(fingerprint=message, filename=name)
                        started = time.perf_counter()
                        response = client.screening.ScreenFingerprint(
                            request, timeout=60, metadata=client.metadata)
                        elapsed = (time.perf_counter() - started) * 1000.0
                        claimed = any(m.claim_id for m in response.matches)
                        assert claimed == (name == claiming), (name, claiming, claimed)
                        if n >= 4:  # the first calls warm the worker's matcher
                            out["claims" if claimed else "no_claims"].append(elapsed)
    finally:
        server.stop(0).wait(30)
    return out


def record_cost(catalog: Path, query, repeats: int = 100) -> dict:
    """``ClaimStore.record`` alone, in process, for one acting match (milliseconds)."""
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.claims import ClaimStore
    from nanhu.engine.matcher import Matcher

    with Catalog(catalog) as reader:
        matches = [m for m in Matcher(reader).match(query)][:1]
    costs = []
    with ClaimStore(catalog) as store:
        for _ in range(repeats):
            for m in matches:
                m.claim_id, m.action = "", "block"
            started = time.perf_counter()
            store.record(matches, tenant="timing", request_id="t")
            costs.append((time.perf_counter() - started) * 1000.0)
    data = np.asarray(costs)
    return {"p50_ms": round(float(np.percentile(data, 50)), 3),
            "p90_ms": round(float(np.percentile(data, 90)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanhu.benchmarks.claims_latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=20, help="works in the catalog (at least 2)")
    parser.add_argument("--calls", type=int, default=60,
                        help="screenings per song and phase (each series gets 2x this)")
    parser.add_argument("--dir", type=Path, default=None, help="where the catalog goes "
                        "(default: a temporary folder; its file system sets the fsync cost)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="nanhu-claims-latency-", dir=args.dir))
    catalog, queries = build(folder, max(2, args.works))
    series = screenings(catalog, queries, args.calls)
    out = {"works": max(2, args.works), "folder": str(folder),
           "file_system": _file_system(folder)}
    out.update({kind: _summary(values) for kind, values in series.items()})
    out["p50_difference_ms"] = round(out["claims"]["p50_ms"] - out["no_claims"]["p50_ms"], 2)
    out["p50_ratio"] = round(out["claims"]["p50_ms"] / out["no_claims"]["p50_ms"], 3)
    out["record_alone"] = record_cost(catalog, queries["song-a"])
    print(json.dumps(out))
    return 0


def _file_system(folder: Path) -> str:
    """The mount's file system type (fsync costs differ by orders of magnitude)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(folder.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return f"{kind} ({best or os.sep})"


if __name__ == "__main__":
    raise SystemExit(main())
