"""Audio postings: the segment store against its brute-force twin (video vectors:
tests/engine/test_vectors.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from nanhu.engine.audio.keys import KEY_BITS, Landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import CatalogCorrupt
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.store import postings_write
from nanhu.engine.store.postings import (
    Segment,
    SegmentPostings,
    StoredKeys,
    merge_segments,
    mix_keys,
    select,
    unmix_keys,
    write_segment,
)
from nanhu.engine.store.postings_twin import BruteForcePostings, select_sorted

# Keys come from a small pool spread over the 30-bit key space (so that postings collide),
# plus neighbours sharing a bucket with them (so that in-bucket remainders are compared).
KEY_POOL = sorted({(k * 2654435761) % (1 << KEY_BITS) for k in range(40)}
                  | {(k * 2654435761 + 1) % (1 << KEY_BITS) for k in range(8)})
keys_st = st.sampled_from(KEY_POOL)
batch_st = st.tuples(
    st.integers(0, 2**20),  # ordinal
    st.lists(st.tuples(keys_st, st.integers(0, 2**24)), max_size=60),  # (key, frame)
)


def triples(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[int, int, int]]:
    """A lookup result as a sorted list of (key index, ordinal, frame)."""
    key_index, ordinals, frames = result
    assert key_index.dtype == np.int64
    assert ordinals.dtype == np.uint32 and frames.dtype == np.uint32
    return sorted(zip(key_index.tolist(), ordinals.tolist(), frames.tolist()))


def as_arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array([k for k, _ in pairs], np.uint32)
    frames = np.array([f for _, f in pairs], np.int64)
    return keys, frames


def _distinct_ordinals(batches):
    seen, out = set(), []
    for ordinal, pairs in batches:
        if ordinal not in seen:
            seen.add(ordinal)
            out.append((ordinal, pairs))
    return out


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(batch_st, max_size=6),
       query=st.lists(st.one_of(keys_st, st.integers(0, (1 << 32) - 1)), unique=True,
                      max_size=30),
       cap=st.one_of(st.none(), st.integers(0, 12)),
       budget=st.one_of(st.none(), st.integers(0, 80)),
       drop=st.integers(0, 5),
       layouts=st.tuples(st.sampled_from([None, "flat", "keyed"]),
                         st.sampled_from([None, "flat", "keyed"])),
       hot_max=st.sampled_from([0, 1, 3, 64]))
def test_segments_and_their_merge_agree_with_brute_force(batches, query, cap, budget, drop,
                                                         layouts, hot_max):
    """Capped lookups over several segments, and over their merge (dropping one reference),
    return exactly the dict of lists' postings, in either layout (a flat segment merged into a
    keyed one and back) and wherever the keyed layout's hot region ends."""
    with mock.patch.object(postings_write, "HOT_MAX", hot_max):
        _segments_and_merge_against_brute_force(batches, query, cap, budget, drop, layouts)


def _segments_and_merge_against_brute_force(batches, query, cap, budget, drop, layouts):
    batches = _distinct_ordinals(batches)
    brute, merged_brute = BruteForcePostings(), BruteForcePostings()
    dropped = batches[drop][0] if drop < len(batches) else None
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for n, (ordinal, pairs) in enumerate(batches):
            keys, frames = as_arrays(pairs)
            brute.add(ordinal, keys, frames)
            if ordinal != dropped:
                merged_brute.add(ordinal, keys, frames)
            if keys.size:
                paths.append(Path(folder) / f"seg-{n}.pst")
                write_segment(paths[-1], keys, np.full(keys.size, ordinal, np.uint32), frames,
                              key_bits=KEY_BITS, layout=layouts[0])
        query_keys = np.array(query, np.uint32)
        segments = SegmentPostings(paths)
        assert triples(segments.lookup(query_keys, max_postings=cap, budget=budget)) == triples(
            brute.lookup(query_keys, max_postings=cap, budget=budget))
        assert len(segments) == len(brute)
        out = Path(folder) / "merged.pst"
        info = merge_segments(paths, out, key_bits=KEY_BITS,
                              drop_ordinals=np.array([] if dropped is None else [dropped]),
                              partitions=4, layout=layouts[1])
        merged = SegmentPostings([out])
        assert info["count"] == len(merged) == len(merged_brute)
        assert triples(merged.lookup(query_keys, max_postings=cap, budget=budget)) == triples(
            merged_brute.lookup(query_keys, max_postings=cap, budget=budget))
        del segments, merged  # unmap before the folder goes


def test_the_writer_takes_the_smaller_layout_and_both_hold_the_same_postings(tmp_path):
    """Keys holding a posting or two: a remainder a posting is smaller; keys holding dozens
    (a large catalog): a remainder a key, and the hot keys' positions first."""
    rng = np.random.default_rng(3)
    for name, distinct, n in (("sparse", 1 << 28, 50_000), ("dense", 2_000, 50_000)):
        keys = rng.integers(0, distinct, n).astype(np.uint32)
        keys[:300] = 7  # one key past the hot region
        ordinals = rng.integers(0, 9, n).astype(np.uint32)
        frames = rng.integers(0, 10**5, n)
        sizes = {}
        for layout in (None, "flat", "keyed"):
            path = tmp_path / f"{name}-{layout}.pst"
            sizes[layout] = write_segment(path, keys, ordinals, frames, key_bits=KEY_BITS,
                                          layout=layout)
        assert sizes[None] == min(sizes["flat"], sizes["keyed"])
        chosen = Segment(tmp_path / f"{name}-None.pst")
        assert chosen.keyed == (name == "dense")
        flat, keyed = (SegmentPostings([tmp_path / f"{name}-{x}.pst"]) for x in ("flat", "keyed"))
        query = np.unique(np.concatenate([keys[::7], [7, 1 << 27]])).astype(np.uint32)
        assert triples(flat.lookup(query)) == triples(keyed.lookup(query))
        assert sorted(zip(*[a.tolist() for a in flat.all_postings()])) == sorted(
            zip(*[a.tolist() for a in keyed.all_postings()]))
        segment = keyed.segments[0]
        assert segment.n_keys == flat.segments[0].n_keys == np.unique(keys).size
        hot_keys = segment.key_counts <= 64
        assert segment.hot_count == int(segment.key_counts[hot_keys].sum())
        assert int(segment.key_firsts[~hot_keys].min()) >= segment.hot_count
        del flat, keyed, chosen, segment


def test_version_3_segments_are_still_read(tmp_path):
    """A catalog written before the keyed layout (48-byte header, flat) opens as it was."""
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 1 << KEY_BITS, 5000).astype(np.uint32)
    path = tmp_path / "v4.pst"
    write_segment(path, keys, np.zeros(5000, np.uint32), np.arange(5000), key_bits=KEY_BITS,
                  layout="flat")
    data = bytearray(path.read_bytes())
    old = data[:8] + (3).to_bytes(4, "little") + data[12:48] + data[64:]
    (tmp_path / "v3.pst").write_bytes(bytes(old))
    v3, v4 = SegmentPostings([tmp_path / "v3.pst"]), SegmentPostings([path])
    assert v3.segments[0].version == 3 and not v3.segments[0].keyed
    assert triples(v3.lookup(keys[:500])) == triples(v4.lookup(keys[:500]))
    del v3, v4


def test_segments_of_one_key_width_share_the_sorted_query(tmp_path):
    """``spans`` mixes and sorts the query once for every segment of a width; each segment's
    ranges are still its own bisections', and a query mixed for another width is refused."""
    rng = np.random.default_rng(3)
    paths = []
    for i, n in enumerate((50_000, 300, 4_000)):
        keys = rng.integers(0, 1 << KEY_BITS, n).astype(np.uint32)
        paths.append(tmp_path / f"{i}.pst")
        write_segment(paths[-1], keys, np.full(n, i, np.uint32), np.arange(n), key_bits=KEY_BITS)
    postings = SegmentPostings(paths)
    query = np.concatenate([rng.integers(0, 1 << KEY_BITS, 3000),
                            [1 << KEY_BITS]]).astype(np.uint32)
    for segment, (first, count) in zip(postings.segments, postings.spans(query)):
        twin_first, twin_count = segment.ranges_numpy(query)
        assert first.tolist() == twin_first.tolist() and count.tolist() == twin_count.tolist()
    with pytest.raises(ValueError, match="mixed for 14 bits"):
        postings.segments[0].ranges_stored(StoredKeys(query, 14))


def test_a_lookup_budget_takes_the_rarest_keys_first(tmp_path):
    keys = np.repeat(np.array([5, 6, 7], np.uint32), [1, 3, 6])
    write_segment(tmp_path / "a.pst", keys, np.zeros(keys.size, np.uint32), np.arange(keys.size),
                  key_bits=KEY_BITS)
    postings = SegmentPostings([tmp_path / "a.pst"])
    query = np.array([7, 6, 5], np.uint32)
    for budget, answered in ((10, [0, 1, 2]), (9, [1, 2]), (4, [1, 2]), (3, [2]), (0, [])):
        key_index, _, _ = postings.lookup(query, budget=budget)
        assert sorted(set(key_index.tolist())) == answered, budget


@settings(max_examples=300, deadline=None)
@given(per_key=st.lists(st.integers(0, 40), max_size=200), cap=st.one_of(st.none(),
       st.integers(0, 45)), budget=st.one_of(st.none(), st.integers(-1, 2000)))
def test_the_counted_selection_equals_a_stable_sort_by_rarity(per_key, cap, budget):
    """:func:`select` (by a bincount of posting counts) against its twin, a stable sort: the
    same keys at every cap and budget, ties and zero-posting keys included."""
    per_key = np.array(per_key, np.int64)
    found = select(per_key, max_postings=cap, budget=budget)
    twin = select_sorted(per_key, max_postings=cap, budget=budget)
    assert found.tolist() == twin.tolist()


def test_segment_file_round_trip_is_sorted_and_compact(tmp_path):
    rng = np.random.default_rng(0)
    n = 200_001  # odd count: padding after the remainders
    keys = rng.integers(0, 1 << KEY_BITS, n).astype(np.uint32)
    ordinals = rng.integers(0, 50, n).astype(np.uint32)
    frames = rng.integers(0, 10**6, n)
    size = write_segment(tmp_path / "a.pst", keys, ordinals, frames, key_bits=KEY_BITS)
    segment = Segment(tmp_path / "a.pst")
    assert segment.dir_bits == n.bit_length() - 2  # 2-4 postings a bucket
    assert size < n * 8  # 2-byte remainders + 4-byte positions + 1-2 bytes of directory
    stored_keys, posting = segment.keys_in(0, 1 << segment.dir_bits)
    assert np.all(np.diff(stored_keys.astype(np.int64)) >= 0)  # sorted in mixed order
    o, f = segment.resolve(posting)
    assert sorted(zip(unmix_keys(stored_keys, KEY_BITS).tolist(), o.tolist(), f.tolist())) == sorted(
        zip(keys.tolist(), ordinals.tolist(), frames.tolist()))


def test_mixing_is_a_bijection_that_spreads_neighbouring_keys():
    keys = np.arange(1 << 12, dtype=np.uint32) + np.uint32(123 << 12)  # one invariant pattern,
    mixed = mix_keys(keys, KEY_BITS)  # every low-field value
    assert np.array_equal(unmix_keys(mixed, KEY_BITS), keys)
    assert np.unique(mixed).size == keys.size and int(mixed.max()) < 1 << KEY_BITS
    # stored under the top 20 bits, the 4,096 neighbours fall into nearly as many buckets
    assert np.unique(mixed >> np.uint32(KEY_BITS - 20)).size > 3900


def test_stop_keys_are_capped_across_segments(tmp_path):
    """A key's postings are counted over every segment before the cap applies."""
    common, rare = np.uint32(12345), np.uint32(999_999)
    for n in range(3):
        keys = np.array([common] * 4 + [rare], np.uint32)
        write_segment(tmp_path / f"{n}.pst", keys, np.full(5, n, np.uint32), np.arange(5),
                      key_bits=KEY_BITS)
    postings = SegmentPostings(sorted(tmp_path.glob("*.pst")))
    key_index, _, _ = postings.lookup(np.array([common, rare], np.uint32), max_postings=10)
    assert key_index.tolist() == [1, 1, 1]  # 12 postings of the common key: a stop-key
    key_index, _, _ = postings.lookup(np.array([common, rare], np.uint32), max_postings=12)
    assert sorted(key_index.tolist()) == [0] * 12 + [1] * 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) - 8], "truncated"),
        (lambda data: b"NOTNANHU" + data[8:], "not a Nanhu postings segment"),
        (lambda data: data[:8] + (7).to_bytes(4, "little") + data[12:], "version 7.*rebuild"),
        (lambda data: b"", "cannot map|not a Nanhu"),
    ],
)
def test_damaged_segments_are_refused(tmp_path, damage, message):
    path = tmp_path / "seg.pst"
    write_segment(path, np.arange(10, dtype=np.uint32), np.zeros(10, np.uint32), np.arange(10),
                  key_bits=KEY_BITS)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CatalogCorrupt, match=message):
        SegmentPostings([path])


def test_empty_indexes_answer_empty(tmp_path):
    keys = np.array([1, 2, 3], np.uint32)
    for index in (SegmentPostings([]), BruteForcePostings()):
        assert triples(index.lookup(keys)) == [] and len(index) == 0


# --- the catalog's postings: add, delete (tombstones), commit, reopen, compaction ----------
class CatalogPostingsMachine(RuleBasedStateMachine):
    """Random registrations, deletions, commits, reopenings and compactions of a catalog,
    compared after every step with a dict of lists holding the committed live postings."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "catalog"
        self.catalog: Catalog | None = None
        self.committed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.staged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.staged_deletes: set[str] = set()
        self.counter = 0

    @initialize()
    def open_writer(self) -> None:
        self.catalog = Catalog(self.path, writable=True, create=True)

    @rule(pairs=st.lists(st.tuples(keys_st, st.integers(0, 5000)), min_size=1, max_size=40))
    def add(self, pairs) -> None:
        self.counter += 1
        ref_id = f"ref-{self.counter}"
        keys, frames = as_arrays(pairs)
        self.catalog.add(ref_id, _fingerprint(keys, frames, digest=f"digest-{self.counter}"))
        self.staged[ref_id] = (keys, frames)

    @precondition(lambda self: bool(set(self.committed) - self.staged_deletes))
    @rule(data=st.data())
    def delete(self, data) -> None:
        ref_id = data.draw(st.sampled_from(sorted(set(self.committed) - self.staged_deletes)))
        self.catalog.delete(ref_id)
        self.staged_deletes.add(ref_id)

    @rule()
    def commit(self) -> None:
        self.catalog.commit()
        self.committed.update(self.staged)
        for ref_id in self.staged_deletes:
            del self.committed[ref_id]
        self.staged, self.staged_deletes = {}, set()

    @rule()
    def compact(self) -> None:
        self.commit()  # compaction commits what is staged first
        self.catalog.compact()
        postings = self.catalog.postings()
        assert len(postings) == sum(keys.size for keys, _ in self.committed.values())
        assert self.catalog.deleted_ordinals().size == 0

    @rule()
    def reopen(self) -> None:
        self.catalog.close()  # staged work is lost, as after a crash
        self.staged, self.staged_deletes = {}, set()
        self.catalog = Catalog(self.path, writable=True)

    @invariant()
    def readers_see_exactly_the_committed_postings(self) -> None:
        if self.catalog is None:
            return
        with Catalog(self.path) as reader:
            brute = BruteForcePostings()
            ordinals = {}
            for ref_id, (keys, frames) in self.committed.items():
                ordinals[ref_id] = reader.get(ref_id).ordinal
                brute.add(ordinals[ref_id], keys, frames)
            assert {r.ref_id for r in reader.list()} == set(self.committed)
            query = np.array(KEY_POOL, np.uint32)
            key_index, found_ordinals, frames = reader.postings().lookup(query)
            alive = ~np.isin(found_ordinals, reader.deleted_ordinals())  # as the matcher does
            assert triples((key_index[alive], found_ordinals[alive], frames[alive])) == triples(
                brute.lookup(query))

    def teardown(self) -> None:
        if self.catalog is not None:
            self.catalog.close()
        self.folder.cleanup()


def _fingerprint(keys, frames, *, digest):
    """Like the ``kit.fingerprint`` fixture helper (a state machine gets no fixtures)."""
    landmarks = Landmarks(keys, frames.astype(np.int32), np.zeros(keys.size, np.uint8),
                          np.ones(1, np.float32), np.ones(1, np.float32))
    # 90 s: frames go up to 5000 (80 s), and a catalog refuses frames past the duration
    return Fingerprint(duration_s=90.0, digest=digest, audio=landmarks,
                       audio_params_tag=AudioParams().tag())


TestCatalogPostings = CatalogPostingsMachine.TestCase
TestCatalogPostings.settings = settings(max_examples=20, stateful_step_count=12, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
