"""Writing through the cluster and rebalancing it: each work on exactly one shard, the one the
placement rule names, and the answers still those of the unsplit catalog."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.layout import ClusterLayout, add_shards, init_cluster
from nanhu.engine.cluster.placement import shard_of
from nanhu.engine.cluster.rebalance import misplaced, rebalance
from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog
from nanhu.engine.cluster.writes import ClusterWriter, LocalWrites, ShardWrites
from nanhu.engine.errors import AlreadyExists, NotFound
from nanhu.engine.matcher import Matcher


def open_cluster(root):
    layout = ClusterLayout.read(root)
    dirs = [layout.shard_dir(s) for s in range(layout.n_shards)]
    view = ShardedCatalog(LocalFanout(dirs))
    return layout, view, LocalWrites(dirs)


def where(layout) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for shard in range(layout.n_shards):
        with Catalog(layout.shard_dir(shard)) as catalog:
            for ref in catalog.list(limit=10_000):
                out.setdefault(ref.ref_id, []).append(shard)
    return out


def test_registrations_land_on_their_shard_once_in_the_whole_cluster(tmp_path, cluster_corpus):
    corpus = cluster_corpus
    init_cluster(tmp_path / "c", 3)
    layout, view, writes = open_cluster(tmp_path / "c")
    writer = ClusterWriter(layout, view, writes)
    for ref_id in ("song-0", "song-1", "tune-0", "film-0"):
        shard, overlaps = writer.register(ref_id, corpus.references[ref_id], owner="label",
                                          title=ref_id.upper())
        assert shard == shard_of(ref_id, 3) and overlaps == 0
    assert where(layout) == {r: [shard_of(r, 3)] for r in ("song-0", "song-1", "tune-0",
                                                           "film-0")}
    with pytest.raises(AlreadyExists):
        writer.register("song-0", corpus.references["song-2"])
    # the same content under another id, whatever shard that id would go to
    other = next(f"copy-{i}" for i in range(50) if shard_of(f"copy-{i}", 3) != shard_of(
        "song-1", 3))
    with pytest.raises(AlreadyExists, match="song-1"):
        writer.register(other, corpus.references["song-1"])
    writer.set_policy("tune-0", {"action": "block"})
    writer.set_owner_policy("label", {"action": "track"})
    view.refresh()
    assert view.get("tune-0").policy["action"] == "block"
    assert view.owner_policies()["label"].action == "track"
    assert view.get("song-0").title == "SONG-0"
    writer.delete("song-1")
    view.refresh()
    with pytest.raises(NotFound):
        view.get("song-1")
    assert {r.ref_id for r in view.list()} == {"song-0", "tune-0", "film-0"}


def test_an_exported_reference_matches_as_the_registered_one(tmp_path, cluster_corpus,
                                                            cluster_kit):
    build_cluster, _ = cluster_kit
    corpus = cluster_corpus
    root = tmp_path / "c"
    layout = build_cluster(root, corpus, 1)
    blob = ShardWrites(str(layout.shard_dir(0))).export(["film-1", "song-2"])
    moved = tmp_path / "moved"
    with Catalog(moved, writable=True, create=True) as catalog:
        from nanhu.engine.fingerprint import Fingerprint

        for ref_id, data in blob.items():
            catalog.add(ref_id, Fingerprint.from_bytes(data), title=ref_id, owner="label")
        catalog.commit()
    with Catalog(moved) as there, Catalog(layout.shard_dir(0)) as here:
        for ref_id in blob:
            a, b = there.get(ref_id), here.get(ref_id)
            assert (a.n_hashes, a.n_keyframes, a.duration_s, a.digest) == (
                b.n_hashes, b.n_keyframes, b.duration_s, b.digest)
            # the peak check's reference peaks move with the work, integer for integer
            moved_peaks = there.reference_peaks().raw_window(a.ordinal, 0, 1e9)
            kept_peaks = here.reference_peaks().raw_window(b.ordinal, 0, 1e9)
            assert moved_peaks[0].size > 100
            assert all(np.array_equal(x, y) for x, y in zip(moved_peaks, kept_peaks))
        fp = corpus.queries["film-1/fused"]
        m = Matcher(there).match(fp)
        assert m and m[0].reference_id == "film-1" and m[0].modality == "audio+video"


def test_rebalance_interrupted_and_resumed_leaves_each_work_on_its_one_shard(tmp_path, cluster_corpus,
                                                                            cluster_kit):
    build_cluster, answers = cluster_kit
    corpus = cluster_corpus
    root = tmp_path / "c"
    build_cluster(root, corpus, 2)
    add_shards(root, 2)
    layout, view, writes = open_cluster(root)
    assert layout.rebalance and misplaced(view, layout)
    first = rebalance(layout, view, writes, batch=2, stop_after=2)  # an interruption
    assert 0 < first.moved < sum(len(v) for v in misplaced(view, layout).values()) + first.moved
    # a crash between a batch's add and its delete: the work is on both shards
    layout, view, writes = open_cluster(root)
    source, ids = next(iter(misplaced(view, layout).items()))
    exported = ShardWrites(str(layout.shard_dir(source))).export(ids[:1])
    ShardWrites(str(layout.shard_dir(layout.shard_for(ids[0])))).apply(
        [{"op": "add", "ref_id": ids[0], "fingerprint": exported[ids[0]], "owner": "label",
          "title": ids[0]}])
    assert len(where(layout)[ids[0]]) == 2
    layout, view, writes = open_cluster(root)
    rest = rebalance(layout, view, writes, batch=3)
    assert rest.already_there >= 1
    placed = where(layout)
    assert set(placed) == set(corpus.references)
    assert placed == {r: [shard_of(r, 4)] for r in corpus.references}
    assert ClusterLayout.read(root).rebalance is None
    layout, view, _ = open_cluster(root)
    with Catalog(corpus.single) as single:
        one, split = Matcher(single), Matcher(view)
        for name, fp in corpus.queries.items():
            assert [a[:8] for a in answers(split, fp)] == [a[:8] for a in answers(one, fp)], name
    assert np.bincount([s for v in placed.values() for s in v], minlength=4).min() >= 1
