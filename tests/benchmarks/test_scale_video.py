"""The video scale run's pieces: synthetic keyframes keep the fitted statistics, a scale
catalog is coded through the coarse graph where its lists call for one (and the study of the
graph against the flat table reads it back), and its rows go under "video" in
scale-results.json beside audio's."""

from __future__ import annotations

import json

import numpy as np

from nanhu.benchmarks.scale_video import build_real_catalog, build_scale_catalog, write_rows
from nanhu.benchmarks.scale_video_study import coarse_study, miss_breakdown
from nanhu.benchmarks.scale_video_synth import REFERENCE_KEYFRAMES, KeyframeModel, synthetic_ids


def fitted_model() -> tuple[KeyframeModel, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    mean = np.zeros(248, np.float32)
    mean[0] = 3.0
    refs = []
    for _ in range(20):  # "real" references: a mean direction and shots of near-copies
        shots = np.repeat(rng.standard_normal((10, 248)).astype(np.float32), 8, axis=0)
        v = mean + shots + 0.3 * rng.standard_normal(shots.shape).astype(np.float32)
        refs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return KeyframeModel.fit(refs), refs


def test_synthetic_keyframes_follow_the_fitted_mean_and_shots():
    rng = np.random.default_rng(0)
    model, refs = fitted_model()
    fake = model.sample(4000, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(fake, axis=1), 1.0, atol=1e-5)
    real = np.concatenate(refs)
    assert abs(fake[:, 0].mean() - real[:, 0].mean()) < 0.05
    consecutive = np.median(np.sum(fake[1:] * fake[:-1], axis=1))
    random_pairs = np.median(np.sum(fake[1:] * fake[rng.permutation(3999)], axis=1))
    assert consecutive > random_pairs + 0.3  # shots: neighbours alike, strangers not
    ordinals, times = synthetic_ids(REFERENCE_KEYFRAMES - 1, 2, first_ordinal=100)
    assert ordinals.tolist() == [100, 101] and times.tolist() == [(REFERENCE_KEYFRAMES - 1) * 0.5, 0]


def test_video_rows_go_beside_audio_rows(tmp_path):
    (tmp_path / "scale-results.json").write_text(json.dumps({"audio": [{"hours": 1.0}]}))
    write_rows(tmp_path, [{"hours": 30.0, "index": "compact"}])
    results = json.loads((tmp_path / "scale-results.json").read_text())
    assert results["audio"] == [{"hours": 1.0}] and results["video"][0]["index"] == "compact"


def test_a_scale_catalog_is_coded_through_the_coarse_graph(tmp_path, monkeypatch):
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.store import vectors_coarse

    monkeypatch.setattr(vectors_coarse, "MIN_LISTS", 128)  # 3 h of keyframes: 256 lists
    model, refs = fitted_model()
    real = tmp_path / "real"
    build_real_catalog(real, [(f"ref-{i}", v, np.arange(len(v), dtype=np.float32) * 0.5)
                              for i, v in enumerate(refs)])
    built = build_scale_catalog(real, tmp_path / "3h", 3.0, model, seed=0)
    assert built["nlist"] == 256 and built["synthetic_keyframes"] == 3 * 6_573
    queries = model.sample(200, np.random.default_rng(5))
    study = coarse_study(tmp_path / "3h", model, queries, seed=0, rows=2_000)["coarse_graph"]
    assert study["nlist"] == 256 and study["query_vectors"] == 200
    assert study["assign_agreement"] >= 0.95 and study["probe_overlap"] >= 0.9
    with Catalog(tmp_path / "3h") as catalog:  # the graph-coded catalog finds its own rows
        ordinals, _, _ = catalog.vectors().search(refs[3][:20], 1)
    assert (ordinals[:, 0] == ordinals[0, 0]).mean() >= 0.9
    monkeypatch.setattr(vectors_coarse, "MIN_LISTS", 512)
    assert coarse_study(tmp_path / "3h", model, queries, seed=0) == {}
    # the lost-positives breakdown: a copy of ref-3 is found; a "copy" of ref-5 that is
    # really random vectors lines up with nothing of ref-5
    times = np.arange(20, dtype=np.float32) * 0.5
    stranger = np.random.default_rng(9).standard_normal((20, 248)).astype(np.float32)
    data = {"refs": [(f"ref-{i}", v, None) for i, v in enumerate(refs)], "negatives": [],
            "positives": [(3, 0.0, "copy", refs[3][:20], times),
                          (5, 0.0, "stranger",
                           stranger / np.linalg.norm(stranger, axis=1, keepdims=True), times)]}
    lost = miss_breakdown(tmp_path / "3h", data)
    assert lost["found"] == 1 and lost["not_in_neighbours"] + lost["no_segment"] == 1, lost
    assert sum(v for k, v in lost.items() if k not in ("below_scores", "by_attack")) == 2
    assert lost["by_attack"] == {"copy": [1, 1], "stranger": [0, 1]}
