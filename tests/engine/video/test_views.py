"""Alignment of queries described in several views: one view's line is found and tagged, the
views tried are paid for, and one finding seen in two views is reported once."""

import numpy as np

from nanhu.engine.video.align import align_video
from nanhu.engine.video.views import align_views


def _hits(n: int, *, ref: int, offset: float, sim: float, k: int = 4, seed: int = 0):
    """Neighbours of ``n`` query keyframes (0.5 s apart) on the line r = q + offset of ``ref``,
    plus ``k - 1`` random unrelated ones each."""
    rng = np.random.default_rng(seed)
    q = np.arange(n) * 0.5
    refs = rng.integers(100, 200, (n, k))
    times = rng.uniform(0, 300, (n, k)).astype(np.float32)
    sims = rng.uniform(0.3, 0.55, (n, k)).astype(np.float32)
    refs[:, 0], times[:, 0], sims[:, 0] = ref, q + offset, sim
    vectors = rng.standard_normal((n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return q.astype(np.float32), refs, times, sims, vectors


def _stack(*parts):
    return [np.concatenate(p) for p in zip(*parts)]


def test_the_view_that_holds_the_copy_is_found_and_tagged():
    whole = _hits(20, ref=150, offset=0.0, sim=0.3, seed=1)  # the whole frame matches nothing
    window = _hits(20, ref=7, offset=40.0, sim=0.8, seed=2)
    views = np.repeat([0, 6], 20)
    q, refs, times, sims, vectors = _stack(whole, window)
    segments = align_views(views, q, refs, times, sims, query_vectors=vectors,
                           catalog_keyframes=50_000)
    assert segments and segments[0].reference == 7
    assert segments[0].evidence["view"] == "pip"
    assert abs(segments[0].reference_start_s - 40.0) < 0.6


def test_views_tried_are_paid_for():
    q, refs, times, sims, vectors = _hits(8, ref=7, offset=10.0, sim=0.7, seed=3)
    one = align_video(q, refs, times, sims, query_vectors=vectors, catalog_keyframes=50_000)
    many = align_video(q, refs, times, sims, query_vectors=vectors, catalog_keyframes=50_000,
                       views=9)
    assert one and many
    assert many[0].evidence["log10_chance"] > one[0].evidence["log10_chance"]
    assert abs(many[0].evidence["log10_chance"] - one[0].evidence["log10_chance"]
               - np.log10(9)) < 0.011  # evidence is rounded to 0.01


def test_one_finding_in_two_views_is_reported_once():
    a = _hits(20, ref=7, offset=5.0, sim=0.85, seed=4)
    b = _hits(20, ref=7, offset=5.0, sim=0.75, seed=5)
    views = np.repeat([0, 1], 20)
    q, refs, times, sims, vectors = _stack(a, b)
    segments = align_views(views, q, refs, times, sims, query_vectors=vectors,
                           catalog_keyframes=50_000)
    assert [s.reference for s in segments] == [7]
    assert segments[0].evidence["view"] == "full"
