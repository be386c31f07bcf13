"""``nanhu bench cluster``: the same catalog as 1, 2 and 4 shards served on Ray, against one
catalog; identical answers, latency, throughput, the fan-out overhead and a projection.

    nanhu bench cluster [--quick] --out DIR

The catalog is the real-music benchmark catalog (``nanhu bench audio`` builds and caches it,
18.5 h); each shard count's cluster is cut from it by exporting every work
(:meth:`engine.cluster.writes.ShardWrites.export`) onto its placement shard, cached beside it.
Queries are the scale benchmark's attacked 5 s excerpts (clean, mp3, pink 5 dB, speed 1.1) and
never-registered negatives, keyed on demand as the server keys an upload, so the peak check
runs over the shards as over one catalog (built once and cached).

A local Ray (this machine's cores) runs one replica and one writer actor per shard. Latency is
measured per query from a client thread holding its own view (what a front-door worker does);
``clients`` threads run at once for the throughput. Writes ``DIR/cluster-results.json``::

    {"identical_answers": bool, "queries": N, "rows": [{"shards", "clients", "p50_ms",
     "p99_ms", "screenings_per_s", "cpu_ms_per_query", "round_trips_per_query",
     "round_trips_total_per_query", "mode"}],
     "fanout_overhead_ms": {...}, "fanout_overhead_cpu_ms": {...}, "load_average": [...],
     "projection": {...}}
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.layout import ClusterLayout, init_cluster
from nanhu.engine.cluster.writes import ShardWrites
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher

log = logging.getLogger("nanhu.benchmarks.cluster")

CACHE = Path.home() / ".cache" / "nanhu" / "bench"
#: in the cached splits' names: a split made before the export carried reference peaks (v2)
#: would serve votes alone, so it is not reused
SPLIT_VERSION = "x2"


def screening_queries(positives: int, negatives: int) -> list[tuple[str, Fingerprint]]:
    """The scale benchmark's attacked 5 s excerpts (clean, mp3, pink 5 dB, speed 1.1) and
    never-registered negatives, keyed on demand as the server screens an upload (so the peak
    check runs, over the shards too): the first ``positives`` and ``negatives`` of the set
    of 200 and 100 (:func:`benchmarks.scale_queries.cached_query_set`, built once)."""
    from nanhu.benchmarks.corpus.audio import load_audio_corpus
    from nanhu.benchmarks.scale_queries import cached_query_set
    from nanhu.engine.audio.params import AudioParams

    pos, neg = cached_query_set(CACHE, load_audio_corpus(), AudioParams(),
                                positives=max(200, positives), negatives=max(100, negatives),
                                seed=0, keys_on_demand=True)
    return ([(f"{i}:{ref}/{condition}", fp)
             for i, (ref, condition, fp) in enumerate(pos[:positives])]
            + [(f"{len(pos) + i}:negative", fp) for i, (_, fp) in enumerate(neg[:negatives])])


def split_catalog(source: Path, root: Path, n_shards: int) -> ClusterLayout:
    """``source``'s works cut into a cluster of ``n_shards`` (cached: reused when present)."""
    if (root / "cluster.json").exists():
        return ClusterLayout.read(root)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with Catalog(source) as catalog:
        refs = catalog.list(limit=1_000_000)
        params = catalog.audio_params
    layout = init_cluster(tmp, n_shards, audio_params=params)
    exporter = ShardWrites(str(source))
    per_shard: dict[int, list[dict]] = {}
    for lo in range(0, len(refs), 200):
        chunk = refs[lo:lo + 200]
        blobs = exporter.export([r.ref_id for r in chunk])
        for ref in chunk:
            per_shard.setdefault(layout.shard_for(ref.ref_id), []).append({
                "op": "add", "ref_id": ref.ref_id, "fingerprint": blobs[ref.ref_id],
                "title": ref.title, "owner": ref.owner, "metadata": ref.metadata,
                "policy": ref.policy, "overlaps": False})
        log.info("split %d shards: %d/%d works exported", n_shards, lo + len(chunk), len(refs))
    for shard, ops in per_shard.items():
        ShardWrites(str(layout.shard_dir(shard))).apply(ops)
    tmp.rename(root)
    return ClusterLayout.read(root)


def film_corpus(cache: Path, *, films: int = 12, negatives: int = 6, seconds: float = 30.0
                ) -> tuple[Path, list[tuple[str, Fingerprint]]]:
    """Generated films (:func:`benchmarks.synth.write_film`, 320x180) registered into one
    catalog, and queries of them: an 8 s excerpt of each as audio+video, video alone and audio
    alone, and excerpts of never-registered films. Cached under ``cache``."""
    import dataclasses

    from nanhu.benchmarks.synth import music_like, write_film, write_video
    from nanhu.benchmarks.video_probe import Footage
    from nanhu.engine.fingerprint import fingerprint_media

    root = cache / f"cluster-films-{films}-{negatives}-{seconds:g}"
    catalog_dir = root / "catalog"
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    fps = 25

    def excerpt(seed: int, name: str) -> Path:
        path = media / f"{name}.mp4"
        if not path.exists():
            frames = Footage(seed, width=320, height=180, duration_s=seconds).frames(
                np.arange(10 * fps, 18 * fps) / fps)
            sound = music_like(seconds, seed=seed + 2, sample_rate=48000)[10 * 48000:18 * 48000]
            write_video(path, frames, fps, audio=sound.astype(np.float32), sample_rate=48000)
        return path

    queries: list[tuple[str, Fingerprint]] = []
    if not (catalog_dir / "manifest.json").exists():
        tmp = root / "catalog.tmp"
        with Catalog(tmp, writable=True, create=True) as catalog:
            for i in range(films):
                path = media / f"film-{i}.mp4"
                if not path.exists():
                    write_film(path, seconds, seed=500 + i, scale=1)
                catalog.add(f"film-{i}", fingerprint_media(path), title=f"film {i}")
            catalog.commit()
        tmp.rename(catalog_dir)
    for i in range(films):
        fp = fingerprint_media(excerpt(500 + i, f"q-{i}"), query=True, keys_on_demand=True)
        queries += [(f"film-{i}/audio+video", fp),
                    (f"film-{i}/video", dataclasses.replace(fp, audio=None, audio_peaks=None)),
                    (f"film-{i}/audio", dataclasses.replace(fp, video=None))]
    for i in range(negatives):
        queries.append((f"negative-film-{i}", fingerprint_media(excerpt(900 + i, f"n-{i}"),
                                                                query=True, keys_on_demand=True)))
    return catalog_dir, queries


def identical_on_films(cache: Path, address: str | None) -> dict:
    """Video, audio+video and audio answers of the film corpus, 1, 2 and 4 shards against one
    catalog (shards opened here, and on Ray when ``address``)."""
    from nanhu.server.cluster_core import open_view
    from nanhu.server.cluster_ray import start_actors, stop_actors

    catalog_dir, queries = film_corpus(cache)
    with Catalog(catalog_dir) as single:
        one = Matcher(single)
        expected = {name: _rows(one.match(fp)) for name, fp in queries}
    differ = 0
    for n in (1, 2, 4):
        layout = split_catalog(catalog_dir, cache / f"cluster-{n}-films-{SPLIT_VERSION}", n)
        views = [open_view(layout.root)[1]]
        if address:
            start_actors(layout)
            views.append(open_view(layout.root, address=address)[1])
        for view in views:
            matcher = Matcher(view)
            for name, fp in queries:
                view.refresh()
                if _rows(matcher.match(fp)) != expected[name]:
                    differ += 1
                    log.warning("films, %d shards: %s differs", n, name)
        if address:
            stop_actors(layout)
    kinds = sorted({row[1] for rows in expected.values() for row in rows})
    return {"queries": len(queries), "differing": differ, "modalities_matched": kinds,
            "matched_queries": sum(bool(v) for v in expected.values())}


def _rows(matches) -> list[tuple]:
    return [(m.reference_id, m.modality, m.query_start_s, m.query_end_s, m.reference_start_s,
             m.reference_end_s, m.score, m.evidence) for m in matches]


def _load() -> list[float]:
    """The machine's load average (1, 5, 15 min) when the run ended: others' work inflates
    wall times."""
    import os

    return [round(x, 2) for x in os.getloadavg()]


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _tree_cpu_s() -> float:
    """CPU seconds of this process and its children: the driver, and the local Ray's raylet,
    GCS and actors it started (those alive now)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            cpu = process.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        total += cpu.user + cpu.system
    return total


def run_clients(make_matcher, queries, clients: int, expected: dict | None = None) -> dict:
    """Each of ``clients`` threads answers its share of ``queries`` with its own matcher.

    Besides wall time: the CPU per query of the whole process tree (``cpu_ms_per_query``, which
    the other load on the machine does not inflate as it does wall time) and, on a cluster
    view, its round trips per query by shard method. With ``expected`` ({name: rows}), also
    how many answers, given while the clients ran together, differ from it (``differing``)."""
    times: list[float] = []
    differing: list[str] = []
    lock = threading.Lock()
    share = [queries[i::clients] for i in range(clients)]
    matchers = [make_matcher() for _ in range(clients)]

    def work(i: int) -> None:
        for name, fp in share[i]:
            t = time.perf_counter()
            if hasattr(matchers[i].catalog, "missing"):  # a cluster view: a query starts so
                matchers[i].catalog.refresh()
            found = matchers[i].match(fp)
            elapsed = (time.perf_counter() - t) * 1e3
            same = expected is None or _rows(found) == expected[name]
            with lock:
                times.append(elapsed)
                if not same:
                    differing.append(name)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    trips_before = [dict(getattr(m.catalog, "round_trips", {})) for m in matchers]
    cpu_before = _tree_cpu_s()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu = _tree_cpu_s() - cpu_before
    p50, p99 = _percentiles(times)
    out = {"clients": clients, "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
           "screenings_per_s": round(len(times) / wall, 2),
           "cpu_ms_per_query": round(cpu / len(times) * 1e3, 2)}
    if expected is not None:
        out["differing"] = len(differing)
        if differing:
            log.warning("%d clients: %d answers differ (%s)", clients, len(differing),
                        ", ".join(differing[:5]))
    trips: dict[str, int] = {}
    for m, before in zip(matchers, trips_before):
        for method, n in getattr(m.catalog, "round_trips", {}).items():
            trips[method] = trips.get(method, 0) + n - before.get(method, 0)
    if trips:
        out["round_trips_per_query"] = {k: round(v / len(times), 2) for k, v in trips.items() if v}
        # every fan-out call is one round trip to each shard it asks (the state check rides on
        # the first look's: it is no call of its own)
        out["round_trips_total_per_query"] = round(sum(trips.values()) / len(times), 2)
    return out


#: single-shard figures measured at 10,018.6 h by ``nanhu bench scale`` (the warm run of
#: docs/results/scale-2026-12-03c/warm10k.txt: queries keyed on demand, the peak check on; CPU
#: per query on this machine's cores) and the slowest codec's fingerprinting speed (opus,
#: docs/results/fingerprint-speed-2026-12-03/): the inputs of :func:`projection`, each named
#: where it is used
MEASURED_10K = {"hours": 10018.6, "pos_cpu_ms_p50": 9.97, "neg_cpu_ms_p50": 25.9,
                "index_bytes_per_hour": 1_748_399, "fingerprint_x_realtime": 463.5}


def projection(*, hours: float = 100_000, screenings_per_s: float = 1_000,
               shard_hours: float = 10_000, upload_s: float = 300.0,
               negative_share: float = 0.9, front_share_of_cpu: float = 0.15,
               cores_per_node: int = 32, ram_per_node_gb: int = 64,
               measured: dict | None = None) -> dict:
    """What 100,000 h at 1,000 screenings/s would take, from measured single-node figures.

    Assumptions (each is a parameter): shards of ``shard_hours`` (the largest size measured on
    one node); a query costs every shard its lookups, about the single-shard CPU at that size
    (``measured``: positives cheap after the first look, negatives a full look);
    ``negative_share`` of uploads copy nothing; ``front_share_of_cpu`` of a query's CPU is the
    front door's alignment (at 10,000 h: 16 of ~100 ms); an upload of ``upload_s`` is
    fingerprinted once at the measured speed. The figures are projected, not measured."""
    m = dict(MEASURED_10K, **(measured or {}))
    shards = int(np.ceil(hours / shard_hours))
    query_ms = (negative_share * m["neg_cpu_ms_p50"] + (1 - negative_share) * m["pos_cpu_ms_p50"])
    shard_core_s = screenings_per_s * shards * query_ms * (1 - front_share_of_cpu) / 1e3
    front_core_s = screenings_per_s * query_ms * front_share_of_cpu / 1e3
    fingerprint_core_s = screenings_per_s * upload_s / m["fingerprint_x_realtime"]
    index_gb = shard_hours * m["index_bytes_per_hour"] / 1e9
    replicas = int(np.ceil(shard_core_s / shards / cores_per_node))
    front_nodes = int(np.ceil((front_core_s + fingerprint_core_s) / cores_per_node))
    return {
        "projected": True, "hours": hours, "screenings_per_s": screenings_per_s,
        "shards": shards, "replicas_per_shard": replicas,
        "shard_nodes": shards * replicas, "front_door_nodes": front_nodes,
        "cores_shards": round(shard_core_s), "cores_front_door": round(front_core_s),
        "cores_fingerprinting": round(fingerprint_core_s),
        "index_gb_per_shard": round(index_gb, 1),
        "disk_gb_per_shard_node": round(index_gb * 1.5, 1),
        "ram_gb_per_shard_node": ram_per_node_gb,
        "page_cache_note": f"the {index_gb:.0f} GB index fits a {ram_per_node_gb} GB node's "
                           "page cache; measured on one node held to 8 GB it still answered, "
                           "from disk (p50 783 ms, p99 2,609 ms, cold)",
        "assumptions": {"shard_hours": shard_hours, "upload_s": upload_s,
                        "negative_share": negative_share, "cores_per_node": cores_per_node,
                        "query_cpu_ms": round(query_ms, 1), "measured_inputs": m},
    }


def run(out: Path, *, quick: bool = False) -> dict:
    import ray

    from nanhu.server.cluster_core import open_view
    from nanhu.server.cluster_ray import start_actors, stop_actors

    source = CACHE / "audio-catalog-audio-v3-1cc93e6a58"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run `nanhu bench audio` first (it builds and "
                         "caches it)")
    positives, negatives = (60, 40) if quick else (200, 100)
    queries = screening_queries(positives, negatives)
    log.info("%d queries (%d positives, %d negatives)", len(queries), positives, negatives)
    client_counts = (1, 8) if quick else (1, 8, 32)
    with Catalog(source) as single:
        hours = single.stats()["hours"]
        one = Matcher(single)
        expected = {name: _rows(one.match(fp)) for name, fp in queries}
        checked = sum(any(r[7].get("verified") == "peaks" for r in rows_)
                      for rows_ in expected.values())
        rows = [{"shards": 0, "mode": "single catalog, in process", **run_clients(
            lambda: one, queries, c)} for c in client_counts]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, namespace="nanhu")
    identical = True
    overhead: dict[str, float] = {}
    overhead_cpu: dict[str, float] = {}
    try:
        for n in (1, 2, 4):
            layout = split_catalog(source, CACHE / f"cluster-{n}-{source.name}-{SPLIT_VERSION}",
                                   n)
            start_actors(layout)
            address = ray.get_runtime_context().gcs_address
            _, view, _ = open_view(layout.root, address=address)
            on_ray = Matcher(view)
            for name, fp in queries:
                view.refresh()
                if _rows(on_ray.match(fp)) != expected[name]:
                    identical = False
                    log.warning("%d shards: %s differs", n, name)
            local = open_view(layout.root)[1]
            local_matcher = Matcher(local)
            local_row = run_clients(lambda m=local_matcher: m, queries, 1)
            rows.append({"shards": n, "mode": "shards in process (no Ray)", **local_row})
            for c in client_counts:
                # every answer given while the clients run together is compared too
                row = run_clients(lambda r=layout.root, a=address: Matcher(open_view(r, address=a)[1]),
                                  queries, c, expected=expected)
                identical = identical and row["differing"] == 0
                rows.append({"shards": n, "mode": "Ray actors", **row})
                if c == 1:
                    overhead[str(n)] = round(row["p50_ms"] - local_row["p50_ms"], 2)
                    overhead_cpu[str(n)] = round(row["cpu_ms_per_query"]
                                                 - local_row["cpu_ms_per_query"], 2)
            log.info("%d shards done: %s", n, rows[-len(client_counts):])
            stop_actors(layout)
        films = identical_on_films(CACHE, ray.get_runtime_context().gcs_address)
        identical = identical and films["differing"] == 0
    finally:
        ray.shutdown()
    result = {"identical_answers": identical, "queries": len(queries) + films["queries"],
              "audio_queries": len(queries), "audio_queries_matched_by_the_peak_check": checked,
              "film_queries": films, "catalog_hours": hours,
              "rows": rows, "fanout_overhead_ms": overhead,
              "fanout_overhead_cpu_ms": overhead_cpu, "load_average": _load(),
              "projection": projection(),
              "note": "machine: 2 cores shared by the client threads, the Ray actors and the "
                      "raylet; the fan-out overhead is the Ray p50 minus the in-process sharded "
                      "p50 at 1 client (fanout_overhead_cpu_ms: the same for the CPU per query of the "
                      "whole process tree)"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster-results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
