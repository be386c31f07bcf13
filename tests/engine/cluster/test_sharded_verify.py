"""A split catalog verifies video matches as the unsplit one does (engine/cluster/lookup.py,
ShardedLocalIndex): queries found only by local features (a 30 % off-centre crop of a still-shot
film, no soundtrack) get the single catalog's answers, field for field, with one round trip for
the candidates' features, asked only of the shards that hold one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nanhu.benchmarks.synth import still_shots
from nanhu.benchmarks.video_probe import crop, encode
from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.video.local import LocalParams
from nanhu.engine.video.verify import LocalMatchParams

FPS = 5.0
FILMS = 6


@dataclasses.dataclass
class Corpus:
    references: dict[str, Fingerprint]
    queries: dict[str, Fingerprint]
    single: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    media = tmp_path_factory.mktemp("stills")
    refs = {f"film-{s}": fingerprint_media(encode(media / f"film-{s}.mp4",
                                                  still_shots(30.0, seed=s), fps=FPS))
            for s in range(FILMS)}
    queries = {}
    for seed in [*range(FILMS), 50, 51]:  # 50, 51 never registered
        frames = still_shots(10.0, seed=seed, start_s=20.0)
        name = f"film-{seed}" if seed < FILMS else f"negative-{seed}"
        for attack, box in (("crop30", (0.10, 0.20, 0.05, 0.25)),
                            ("crop20", (0.05, 0.15, 0.15, 0.05))):
            fp = fingerprint_media(encode(media / f"{name}-{attack}.mp4", crop(frames, *box),
                                          fps=FPS), query=True)
            queries[f"{name}/{attack}"] = fp
    single = media / "single"
    with Catalog(single, writable=True, create=True) as catalog:
        for ref_id, fp in refs.items():
            catalog.add(ref_id, fp, title=ref_id, owner="label")
        catalog.commit()
    return Corpus(refs, queries, single)


def without_local(fp: Fingerprint) -> Fingerprint:
    return dataclasses.replace(fp, video=dataclasses.replace(fp.video, local=None))


class Counting(LocalFanout):
    """Records the shards asked and the bytes of local features sent back, per call."""

    def __init__(self, shard_dirs) -> None:
        super().__init__(shard_dirs)
        self.asked: list[tuple[str, list[int]]] = []
        self.feature_bytes = 0

    def call_each(self, method, calls):
        self.asked.append((method, [s for s, _ in calls]))
        out = super().call_each(method, calls)
        if method == "local_features":
            self.feature_bytes += sum(f.xy.nbytes + f.descriptors.nbytes + 8 * len(f)
                                      for found in out for f in found.values())
        return out


@pytest.mark.parametrize("n_shards", [2, 3])
def test_sharded_verification_gives_the_single_catalogs_answers(tmp_path, corpus, cluster_kit,
                                                                n_shards):
    build_cluster, answers = cluster_kit  # each shard's references in one commit
    layout = build_cluster(tmp_path / "cluster", corpus, n_shards)
    fanout = Counting([layout.shard_dir(s) for s in range(n_shards)])
    view = ShardedCatalog(fanout)
    with Catalog(corpus.single) as single:
        assert len(view.local_index()) == len(single.local_index()) > FILMS  # cluster-wide
        one, split = Matcher(single), Matcher(view)
        verified = 0
        for name, fp in corpus.queries.items():
            expected = answers(one, fp)
            view.refresh()
            fanout.asked = []
            assert answers(split, fp) == expected, name
            trips = [shards for method, shards in fanout.asked if method == "local_features"]
            assert len(trips) <= 1, name  # the candidates' features in one round trip
            if name.startswith("negative"):
                assert expected == [], name
                continue
            if expected and "best_inliers" in expected[0][8]:
                verified += 1
                # found by verification alone: without local features there is no match
                assert answers(one, without_local(fp)) == [], name
                # only the shards holding a candidate were asked
                (asked,) = trips
                assert len(asked) <= min(n_shards, LocalMatchParams().candidates)
        # most crops are found, and only by verification (else this test proves nothing)
        assert verified >= FILMS
    # each candidate's features cut to the keyframes tried: bytes bounded per query
    most = LocalMatchParams().keyframes_per_reference * LocalParams().keyframe_bytes
    assert 0 < fanout.feature_bytes <= LocalMatchParams().candidates * most * len(corpus.queries)
    view.close()


def test_shard_answers_only_the_keyframes_it_will_try(corpus):
    """features_to_try keeps every keyframe's time and the tried keyframes' keypoints: the
    verification reads the same rows from it as from the whole features."""
    import numpy as np

    from nanhu.engine.video.local import count_inliers
    from nanhu.engine.video.verify import features_to_try, keyframes_to_try

    reference = corpus.references["film-1"].video.local
    query = corpus.queries["film-1/crop30"].video.local
    hit_times = np.array([21.0, 24.5], np.float32)
    hit_sims = np.array([0.6, 0.7], np.float32)
    for most in (1, len(reference)):
        cut = features_to_try(reference, hit_times, hit_sims, most)
        tried = keyframes_to_try(reference, hit_times, hit_sims, most)
        assert np.array_equal(cut.times_s, reference.times_s)
        assert int(cut.counts.sum()) == int(reference.counts[tried].sum())
        assert tried.size == min(most, len(reference))
        for row in range(len(query)):
            xy, desc = query.points(row)
            assert np.array_equal(count_inliers(xy, desc, cut, tried, params=LocalParams()),
                                  count_inliers(xy, desc, reference, tried, params=LocalParams()))


def test_a_moved_reference_keeps_its_local_features(tmp_path, corpus):
    """Rebalancing exports a work's stored fingerprint; its ORB keyframes go with it, so the
    moved work is still verified on its new shard."""
    import numpy as np

    from nanhu.engine.cluster.writes import ShardWrites

    with Catalog(tmp_path / "one", writable=True, create=True) as catalog:
        catalog.add("film-2", corpus.references["film-2"], title="film-2")
        catalog.commit()
    exported = Fingerprint.from_bytes(ShardWrites(str(tmp_path / "one")).export(["film-2"])[
        "film-2"])
    stored = corpus.references["film-2"].video.local
    moved = exported.video.local
    assert moved is not None and np.array_equal(moved.descriptors, stored.descriptors)
    assert np.array_equal(moved.times_s, stored.times_s) and tuple(moved.size) == stored.size
