"""A split catalog answers as the unsplit one does: the same matches (ids, modalities, ranges,
speeds, scores) for audio, video and fused queries, and the same nothing for negatives.

The cluster here is in-process (:class:`LocalFanout`); the Ray-served one is compared the same
way in tests/server/test_cluster_ray.py."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.placement import shards_of
from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog
from nanhu.engine.matcher import Matcher


@pytest.mark.parametrize("n_shards", [2, 3, 5])
def test_a_sharded_catalog_gives_the_single_catalogs_answers(tmp_path, cluster_corpus,
                                                             cluster_kit, n_shards):
    build_cluster, answers = cluster_kit
    corpus = cluster_corpus
    layout = build_cluster(tmp_path / "cluster", corpus, n_shards)
    placed = shards_of(list(corpus.references), n_shards)
    assert len(set(placed.tolist())) > 1  # the references really are split
    view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(n_shards)]))
    with Catalog(corpus.single) as single:
        one, split = Matcher(single), Matcher(view)
        assert view.total_audio_frames == single.total_audio_frames
        # the chance model's reference sizes, by reference, are the single catalog's
        def frames_by_id(catalog):
            ordinals, frames = catalog.reference_frames()
            refs = catalog.by_ordinals(ordinals)
            return {refs[o].ref_id: f for o, f in zip(ordinals.tolist(), frames.tolist())}
        assert frames_by_id(view) == frames_by_id(single) and len(frames_by_id(single)) > 1
        assert len(view.postings()) == len(single.postings())
        assert len(view.vectors()) == len(single.vectors())
        found = 0
        for name, fp in corpus.queries.items():
            expected = answers(one, fp)
            assert answers(split, fp) == expected, name
            found += bool(expected)
            if name.startswith("negative"):
                assert expected == [], name
        assert found >= len(corpus.queries) - 6  # the matches compared are real ones
        kinds = {m.modality for fp in corpus.queries.values() for m in one.match(fp)}
        assert {"audio", "video", "audio+video"} <= kinds
    view.close()


@pytest.mark.parametrize("n_shards", [1, 3])
def test_the_lookup_budget_and_stop_keys_are_decided_for_the_whole_cluster(tmp_path, cluster_corpus,
                                                                         cluster_kit, n_shards):
    """With a tight budget the single catalog drops keys by their cluster-wide counts: the
    split one must drop the same keys, not each shard its own; whether a shard sent its
    candidates with its counts (one round trip) or was asked again for the chosen keys' postings
    (the second phase), and when one shard decides alone."""
    build_cluster, _ = cluster_kit
    corpus = cluster_corpus
    layout = build_cluster(tmp_path / "cluster", corpus, n_shards)
    view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(n_shards)]))
    fp = corpus.queries["song-1/noisy"]
    keys = np.unique(fp.audio.hashes)
    with Catalog(corpus.single) as single:
        for cap, budget in ((None, None), (3, None), (None, 500), (4, 2000), (4, 50)):
            a = single.postings().lookup(keys, max_postings=cap, budget=budget)
            b = view.postings().lookup(keys, max_postings=cap, budget=budget)
            refs = {o: r.ref_id for o, r in single.by_ordinals(np.unique(a[1])).items()}
            ids_b = {o: r.ref_id for o, r in view.by_ordinals(np.unique(b[1])).items()}
            one = sorted(zip(a[0].tolist(), [refs[o] for o in a[1].tolist()], a[2].tolist()))
            two = sorted(zip(b[0].tolist(), [ids_b[o] for o in b[1].tolist()], b[2].tolist()))
            assert one == two, (cap, budget)
            assert cap is None and budget is None or len(one) < len(keys) * 50
    assert view.round_trips["lookup"] == 5
    # a lone shard always answers in one round trip; split, the tight budgets need the second
    assert (view.round_trips["postings_of"] > 0) == (n_shards > 1)
    view.close()


@pytest.mark.parametrize("n_shards", [1, 3])
def test_an_audio_match_needs_no_reference_read_after_its_looks(tmp_path, cluster_corpus,
                                                                cluster_kit, n_shards):
    """The shards send the records of the references most of a look's postings name with the
    postings, so a matched audio query on a view that knows no record yet makes no
    ``by_ordinals`` round trip, and the records it names are the single catalog's."""
    build_cluster, _ = cluster_kit
    corpus = cluster_corpus
    layout = build_cluster(tmp_path / "cluster", corpus, n_shards)
    audio = [(name, fp) for name, fp in corpus.queries.items()
             if fp.audio is not None and fp.video is None and not name.startswith("negative")]
    assert audio
    with Catalog(corpus.single) as single:
        one = Matcher(single)
        for name, fp in audio:
            view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(n_shards)]))
            expected = one.match(fp)
            got = Matcher(view).match(fp)
            assert expected, name
            assert [(m.reference_id, m.owner, m.action) for m in got] == \
                [(m.reference_id, m.owner, m.action) for m in expected], name
            assert view.round_trips["by_ordinals"] == 0, (name, dict(view.round_trips))
            view.close()


def test_the_catalog_size_does_not_depend_on_the_order_durations_are_summed():
    from nanhu.engine.store.catalog_reader import audio_frames

    durations = [0.1] * 10  # summed one by one: 0.9999999999999999 s
    one_by_one = 0.0
    for d in durations:
        one_by_one += d
    assert one_by_one != 1.0
    assert audio_frames(one_by_one, 10.0) == audio_frames(1.0, 10.0) == 10
    assert audio_frames(0.95, 10.0) == 9  # a real fraction of a frame is still dropped


@pytest.mark.parametrize("n_shards", [1, 3])
def test_the_peak_check_runs_over_a_sharded_catalog_as_over_one(tmp_path, cluster_corpus,
                                                               cluster_kit, songs, kit,
                                                               n_shards):
    """Screenings keyed on demand carry the upload's peaks, and a catalog of format 5 its
    references': the peak check then finds what the votes leave. A split catalog must read
    the references' peaks from their shards (one round trip a window, only to the shards
    that hold a hypothesis) and answer as the single catalog does."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams
    from nanhu.engine.fingerprint import fingerprint_media

    build_cluster, answers = cluster_kit
    layout = build_cluster(tmp_path / "cluster", cluster_corpus, n_shards)
    view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(n_shards)]))
    assert view.manifest["audio_peaks"]
    queries = {}
    for ref_id, samples in songs.items():
        for speed in (1.0, 1.04):
            clip = kit.excerpt(kit.speed_change(samples, speed), 10.0, 15.0)
            path = kit.write_clip(tmp_path / f"{ref_id}-{speed}.mp3", clip)
            queries[ref_id, speed] = fingerprint_media(path, query=True, video=False,
                                                       keys_on_demand=True)
    # votes alone pass nothing: whatever matches was found by the peak check
    votes_off = dataclasses.replace(AudioMatchParams(), min_votes=100_000)
    with Catalog(cluster_corpus.single) as single:
        for match in (votes_off, AudioMatchParams()):
            one, split = Matcher(single, audio_match=match), Matcher(view, audio_match=match)
            checked = 0
            for ref_id, fp in queries.items():
                expected = answers(one, fp)
                assert answers(split, fp) == expected, (ref_id, match.min_votes)
                checked += any(row[8].get("verified") == "peaks" for row in expected)
            if match is votes_off:
                assert checked >= len(songs)  # the compared matches are the check's
                assert view.round_trips["peak_windows"] >= 1
    view.close()
