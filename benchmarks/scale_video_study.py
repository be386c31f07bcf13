"""What the video scale run looks at beside its rows (:mod:`benchmarks.scale_video`): the
coarse graph against the flat table it stands in for, and why a positive that the catalog's
size loses is lost (its reference crowded out of the neighbours, or aligned but scored below
the threshold, or beaten by another reference)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks.scale_video_synth import KeyframeModel


def coarse_study(directory: Path, model: KeyframeModel, queries: np.ndarray, seed: int, *,
                 rows: int = 20_000) -> dict:
    """The catalog's coarse graph (:mod:`engine.store.vectors_coarse`) against its flat table,
    on one FAISS thread: share of ``rows`` synthetic keyframes put in the same list, and of the
    query vectors' ``NPROBE`` lists visited, with microseconds a vector each way ({} when the
    quantiser has no graph)."""
    import faiss

    from nanhu.engine.store import vectors_compact as compact

    manifest = json.loads((directory / "manifest.json").read_text())
    quantiser = compact.Quantiser.read(directory / manifest["video_quantiser"]["file"])
    graph = quantiser.coarse
    if graph is None:
        return {}
    flat = faiss.extract_index_ivf(quantiser.shortlist).quantizer
    sample = model.sample(rows, np.random.default_rng([seed, 77]))
    queries = np.ascontiguousarray(queries, np.float32)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        timed = {}
        for name, call in (("flat_assign", lambda: flat.search(sample, 1)[1][:, 0]),
                           ("graph_assign", lambda: graph.assign(sample)),
                           ("flat_probe", lambda: flat.search(queries, compact.NPROBE)[1]),
                           ("graph_probe", lambda: graph.probe(queries, compact.NPROBE)[1])):
            started = time.perf_counter()
            timed[name] = call()
            size = len(sample) if name.endswith("assign") else len(queries)
            timed[name + "_us"] = (time.perf_counter() - started) / max(size, 1) * 1e6
    finally:
        faiss.omp_set_num_threads(threads)
    overlap = np.mean([np.isin(g, f).mean()
                       for g, f in zip(timed["graph_probe"], timed["flat_probe"])])
    return {"coarse_graph": {
        "nlist": graph.nlist, "rows": rows, "query_vectors": len(queries),
        "assign_agreement": float(np.mean(timed["graph_assign"] == timed["flat_assign"])),
        "probe_overlap": float(overlap),
        **{k: float(v) for k, v in timed.items() if k.endswith("_us")}}}


def miss_breakdown(directory: Path, data: dict) -> dict:
    """Each positive of ``data`` (:func:`benchmarks.scale_video_data.real_video_set`) matched
    once more with ``min_score`` 0, counted as: ``found`` (top-1 right at the defaults),
    ``not_in_neighbours`` (no query vector has a row of its reference among its ``k``
    neighbours), ``no_segment`` (neighbours, but no line of ``min_keyframes``), ``below_threshold``
    (its best segment scores under ``min_score``; ``below_scores`` lists them) or
    ``other_first`` (it passes, but another reference ranks first); ``by_attack``: found of
    tried, per attack."""
    from nanhu.benchmarks.scale_video import _queries
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.matcher import Matcher
    from nanhu.engine.video import align as video_align

    defaults = video_align.default_params()
    counts = dict.fromkeys(("found", "not_in_neighbours", "no_segment", "below_threshold",
                            "other_first"), 0)
    below: list[float] = []
    by_attack: dict[str, list[int]] = {}
    with Catalog(directory) as catalog:
        strict = Matcher(catalog)
        loose = Matcher(catalog, video_match=dataclasses.replace(defaults, min_score=0.0))
        index = catalog.vectors()
        for (ref_id, fp), positive in zip(_queries(data)[0], data["positives"]):
            tally = by_attack.setdefault(str(positive[2]), [0, 0])
            tally[1] += 1
            matches = strict.match(fp)
            if matches and matches[0].reference_id == ref_id:
                counts["found"] += 1
                tally[0] += 1
                continue
            ordinal = catalog.get(ref_id).ordinal
            ordinals, _, _ = index.search(fp.video.vectors, defaults.k)
            if not (ordinals == ordinal).any():
                counts["not_in_neighbours"] += 1
                continue
            scores = [m.score for m in loose.match(fp) if m.reference_id == ref_id]
            if not scores:
                counts["no_segment"] += 1
            elif max(scores) < defaults.min_score:
                counts["below_threshold"] += 1
                below.append(round(float(max(scores)), 3))
            else:
                counts["other_first"] += 1
    return {**counts, "below_scores": sorted(below), "by_attack": by_attack}
