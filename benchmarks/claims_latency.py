"""How much recording claims adds to a screening: a small timing script, not part of the suite.

    .venv/bin/python -m nanhu.benchmarks.claims_latency [--works 20] [--calls 60] [--dir DIR]

Builds a catalog of generated songs, two of which (A and B) are copied by two 10 s query
fingerprints, and serves it (``create_server``, one worker). It screens the queries over gRPC
(``ScreenFingerprint``), alternating A and B, in two phases: first A's policy blocks (each of
its screenings records a claim: one SQLite transaction with ``synchronous=FULL`` in
``claims.sqlite``, committed before the response) and B's is disabled (the same matching and
judging, action ``none``, nothing written); then the other way round, so that each series holds
both songs and what differs is the claim. Prints p50/p90/p99 with and without, their difference
and ratio, and the cost of ``ClaimStore.record`` alone, as one JSON object. The server
benchmark (``nanhu bench server``) runs the same measurement (:func:`alternating`) on its real
catalog.
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
            "p90_ms": round(float(np.percentile(data, 90)), 2),
            "p99_ms": round(float(np.percentile(data, 99)), 2), "n": int(data.size)}


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
    from nanhu.server.app import create_server
    from nanhu.server.client import NanhuClient

    server, port = create_server(catalog, workers=1)
    server.start()
    try:
        with NanhuClient(f"127.0.0.1:{port}") as client:
            return alternating(client, queries, {name: name for name in queries}, calls)
    finally:
        server.stop(0).wait(30)


def alternating(client, queries: dict, works: dict[str, str], calls: int,
                warm: int = 4) -> dict[str, list[float]]:
    """The measurement itself, on any server ``client`` reaches as an admin (or without auth).

    ``queries``: two query fingerprints by name; ``works[name]``: the work that query matches
    (two different works). Two phases of ``calls + warm`` alternating ``ScreenFingerprint``
    calls each: in the first, the first work's policy blocks (its screenings record a claim)
    and the second's is disabled (the same matching and judging, action ``none``, nothing
    written); then the other way round. The first ``warm`` rounds of each phase are not
    counted (the workers reload the catalog after a policy change). The works' policies are
    cleared afterwards. Returns milliseconds per call: ``{"claims": [...], "no_claims": [...]}``.
    """
    from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
    from nanhu.server import convert

    names = list(queries)
    if len(names) != 2 or works[names[0]] == works[names[1]]:
        raise ValueError("two queries of two different works are needed")
    out: dict[str, list[float]] = {"claims": [], "no_claims": []}
    messages = {k: convert.fingerprint_to_proto(fp) for k, fp in queries.items()}
    try:
        for claiming in names:
            for name in names:
                client.set_policy(works[name], "block", enabled=name == claiming)
            for n in range(calls + warm):
                for name, message in messages.items():
                    request = pb.ScreenFingerprintRequest(fingerprint=message, filename=name)
                    started = time.perf_counter()
                    response = client.screening.ScreenFingerprint(
                        request, timeout=60, metadata=client.metadata)
                    elapsed = (time.perf_counter() - started) * 1000.0
                    claimed = any(m.claim_id for m in response.matches)
                    if claimed != (name == claiming):
                        raise RuntimeError(f"{name}: claimed={claimed} while {claiming} claims")
                    if n >= warm:
                        out["claims" if claimed else "no_claims"].append(elapsed)
    finally:
        for name in names:
            client.set_policy(works[name])  # no fields: the work has no policy of its own again
    return out


def summary(series: dict[str, list[float]]) -> dict:
    """p50/p90/p99 of each series, their p50 difference and ratio (milliseconds)."""
    out = {kind: _summary(values) for kind, values in series.items()}
    out["p50_difference_ms"] = round(out["claims"]["p50_ms"] - out["no_claims"]["p50_ms"], 2)
    out["p50_ratio"] = round(out["claims"]["p50_ms"] / out["no_claims"]["p50_ms"], 3)
    return out


def claims_phase(address: str, fingerprints: list, *, calls: int) -> dict:
    """Screening latency with and without a claim recorded, on the served catalog: two of
    ``fingerprints`` (10 s edge fingerprints) whose best matches are two different works."""
    from nanhu.server.client import NanhuClient

    with NanhuClient(address, timeout=600) as client:
        chosen: dict[str, object] = {}
        works: dict[str, str] = {}
        for number, fp in enumerate(fingerprints):
            matches = client.screen_fingerprint(fp)["matches"]
            if matches and matches[0]["reference_id"] not in works.values():
                chosen[f"q{number}"], works[f"q{number}"] = fp, matches[0]["reference_id"]
            if len(chosen) == 2:
                break
        if len(chosen) < 2:
            return {"error": "fewer than two queries matched two different works"}
        result = summary(alternating(client, chosen, works, calls))
    result["calls_per_series"] = 2 * calls
    return result


def markdown(claims: dict) -> list[str]:
    """The server report's lines on :func:`claims_phase`'s result."""
    if "error" in claims:
        return [f"Claims latency: not measured ({claims['error']}).", ""]
    with_, without = claims["claims"], claims["no_claims"]
    return [
        f"Screening with a claim recorded (10 s edge fingerprints, 1 client, "
        f"{claims['calls_per_series']} calls each way, alternating): p50 {with_['p50_ms']:.1f} ms, "
        f"p99 {with_['p99_ms']:.1f} ms; without: p50 {without['p50_ms']:.1f} ms, p99 "
        f"{without['p99_ms']:.1f} ms; p50 difference {claims['p50_difference_ms']:+.1f} ms "
        f"(issue 13 asks at most +5 ms).", ""]


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
    out.update(summary(series))
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
