"""The round trips of a sharded query (engine/cluster/view.py, lookup.py): the state check rides
on the query's first call, a window's later looks are asked in one trip, and neither changes an
answer: a shard that moved between queries, or between a query's own trips, and a shard lost in
the middle of a query, each give exactly the answer of a consistent cluster."""

from __future__ import annotations

import dataclasses

import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.placement import shard_of
from nanhu.engine.cluster.view import MISSING, LocalFanout, ShardedCatalog
from nanhu.engine.matcher import Matcher


class Recording(LocalFanout):
    """A LocalFanout that records each round trip (method, shards asked) and can run a hook
    after a call, or lose a shard (every call to it then gives MISSING)."""

    def __init__(self, shard_dirs) -> None:
        super().__init__(shard_dirs)
        self.trips: list[tuple[str, list[int]]] = []
        self.after = None  # called with (method, trip number) after each trip
        self.lost: set[int] = set()
        self.lose_after: tuple[int, int] | None = None  # (shard, after this many trips)

    def call_each(self, method, calls):
        if self.lose_after and len(self.trips) >= self.lose_after[1]:
            self.lost.add(self.lose_after[0])
        self.trips.append((method, [s for s, _ in calls]))
        out = [MISSING if s in self.lost else getattr(self.shards[s], method)(*args)
               for s, args in calls]
        if self.after:
            self.after(method, len(self.trips))
        return out


def _open(layout, n_shards) -> tuple[ShardedCatalog, Recording]:
    fanout = Recording([layout.shard_dir(s) for s in range(n_shards)])
    return ShardedCatalog(fanout), fanout


@pytest.mark.parametrize("ahead", [False, True])
def test_a_query_checks_the_state_with_its_first_look_and_asks_later_looks_as_told(
        tmp_path, cluster_corpus, cluster_kit, ahead):
    build_cluster, answers = cluster_kit
    layout = build_cluster(tmp_path / "cluster", cluster_corpus, 3)
    view, fanout = _open(layout, 3)
    view.postings().ahead = ahead
    split = Matcher(view)
    with Catalog(cluster_corpus.single) as single:
        one = Matcher(single)
        for name, fp in cluster_corpus.queries.items():
            expected = answers(one, fp)
            view.refresh()
            fanout.trips = []
            assert answers(split, fp) == expected, name
            methods = [m for m, _ in fanout.trips]
            assert "state" not in methods, name  # no round trip of its own
            assert methods[0] == "checked" and fanout.trips[0][1] == [0, 1, 2], name
            looks = [m for m in methods[1:] if m in ("lookup", "lookups")]
            # one window each here: the first look, then one trip a look or one for the rest
            if ahead and (fp.audio is not None or fp.audio_peaks is not None):
                assert len(looks) <= 1 and "lookup" not in looks, (name, methods)
            assert ahead or "lookups" not in looks, (name, methods)
    # the staged looks really were taken: some queries needed the later ones
    assert view.round_trips["lookups" if ahead else "lookup"] > 0


def _lookup_trips(fanout: Recording) -> list[str]:
    return [m for m, _ in fanout.trips if m in ("checked", "lookup", "lookups")]


def _without(corpus, ref_id: str):
    """The corpus with ``ref_id`` left out of the references (to register later)."""
    return dataclasses.replace(corpus, references={k: v for k, v in corpus.references.items()
                                                   if k != ref_id})


@pytest.mark.parametrize("change", ["add", "delete"])
def test_a_shard_that_moved_between_queries_answers_at_its_new_generation(
        tmp_path, cluster_corpus, cluster_kit, change):
    """The first look finds the move: the view takes the new state and the query runs again
    on it, so the answer is that of a view opened after the commit."""
    build_cluster, answers = cluster_kit
    corpus = cluster_corpus
    ref_id = "tune-5" if change == "add" else "song-0"
    layout = build_cluster(tmp_path / "cluster",
                           _without(corpus, ref_id) if change == "add" else corpus, 2)
    query = corpus.queries[f"{ref_id}/clean"]
    shard = shard_of(ref_id, 2)
    view, fanout = _open(layout, 2)
    split = Matcher(view)
    before = answers(split, query)
    assert (ref_id in {row[0] for row in before}) == (change == "delete")
    with Catalog(layout.shard_dir(shard), writable=True) as catalog:
        if change == "add":
            catalog.add(ref_id, corpus.references[ref_id], title=ref_id, owner="label")
        else:
            catalog.delete(ref_id)
        catalog.commit()
    view.refresh()
    fanout.trips = []
    after = answers(split, query)
    fresh_view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(2)]))
    assert after == answers(Matcher(fresh_view), query)
    assert (ref_id in {row[0] for row in after}) == (change == "add")
    trips = _lookup_trips(fanout)
    assert trips[0] == "checked" and "checked" not in trips[1:]  # the retry asks no state
    assert trips[1] == "lookup"  # the query's first look again, on the new state
    assert view.round_trips["state"] == 1  # the view's opening only
    fresh_view.close()
    view.close()


def test_a_commit_between_a_querys_trips_is_not_half_seen(tmp_path, cluster_corpus,
                                                         cluster_kit):
    """A shard answers every call of a query at the generation its first call saw: a commit
    landing after that first trip shows in the next query, never in this one's later looks."""
    build_cluster, answers = cluster_kit
    corpus = cluster_corpus
    layout = build_cluster(tmp_path / "cluster", _without(corpus, "tune-5"), 2)
    shard = shard_of("tune-5", 2)
    view, fanout = _open(layout, 2)
    split = Matcher(view)
    query = corpus.queries["tune-5/noisy"]
    old = answers(split, query)
    assert "tune-5" not in {row[0] for row in old}

    def commit(method, trip):
        if trip == 1:  # right after the query's first trip
            with Catalog(layout.shard_dir(shard), writable=True) as catalog:
                catalog.add("tune-5", corpus.references["tune-5"], title="tune-5",
                            owner="label")
                catalog.commit()

    view.refresh()
    fanout.trips, fanout.after = [], commit
    assert answers(split, query) == old
    assert len(_lookup_trips(fanout)) == 3  # no look covered it: every look was asked
    fanout.after = None
    view.refresh()
    new = answers(split, query)
    assert "tune-5" in {row[0] for row in new}
    fresh_view = ShardedCatalog(LocalFanout([layout.shard_dir(s) for s in range(2)]))
    assert new == answers(Matcher(fresh_view), query)
    fresh_view.close()
    view.close()


@pytest.mark.parametrize("ahead", [False, True])
def test_a_shard_lost_in_the_middle_of_a_query_gives_the_answer_of_the_shards_that_answered(
        tmp_path, cluster_corpus, cluster_kit, ahead):
    """Lost after it answered the query's first look, its evidence is not kept: the query runs
    again without it, and the answer is flagged partial and equals the answer of a cluster
    where that shard was missing from the start (with the references cached, the lost shard's
    works would otherwise still be named, from its first look)."""
    build_cluster, answers = cluster_kit
    corpus = cluster_corpus
    layout = build_cluster(tmp_path / "cluster", corpus, 3)
    victim = shard_of("song-0", 3)
    with Catalog(corpus.single) as single:
        baseline = {name: answers(Matcher(single), fp) for name, fp in corpus.queries.items()}
    lost_late = 0
    for name, fp in corpus.queries.items():
        results, missing = [], []
        for lose_after in (0, 1):  # missing from the start; lost after the first trip
            view, fanout = _open(layout, 3)
            view.postings().ahead = ahead
            matcher = Matcher(view)
            matcher.match(fp)  # the references cached, as on a serving view
            view.refresh()
            fanout.trips = []
            fanout.lose_after = (victim, lose_after)
            results.append(answers(matcher, fp))
            missing.append(view.missing_names())
            view.close()
        assert missing[0] == [f"shard-{victim:03d}"], name
        assert [row[0] for row in results[0]] == [
            row[0] for row in baseline[name] if shard_of(row[0], 3) != victim], name
        if missing[1]:  # asked again after its first trip, and lost
            lost_late += 1
            assert results[1] == results[0], name
        else:  # never asked after its first trip: nothing lost, the whole answer
            assert results[1] == baseline[name], name
    assert lost_late >= 4, lost_late  # queries that really lost it between their own trips
