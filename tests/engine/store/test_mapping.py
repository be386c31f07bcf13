"""Which pages of a segment file are mapped at open (engine.store.mapping)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from nanhu.engine.store import mapping
from nanhu.engine.store.postings import Segment, unmix_keys, write_segment


def _mapped_kb(path: Path, field: str = "Rss") -> int:
    """Resident (or ``field``: "Locked") kB of this process's mappings of ``path``
    (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith(f"{field}:"):
            total += int(line.split()[1])
    return total


def _segment(tmp_path: Path, n: int = 2_000_000) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "big.pst"
    write_segment(path, rng.integers(0, 1 << 30, n).astype(np.uint32),
                  np.repeat(np.arange(200, dtype=np.uint32), n // 200), np.arange(n) % 10_000,
                  key_bits=30)
    return path


def _wait_for_mappers(prefix: str = "nanhu-map") -> None:
    """Until the background threads named ``prefix...`` ("nanhu-lock": the lockers) are done."""
    deadline = time.monotonic() + 30
    while any(t.name.startswith(prefix) for t in threading.enumerate()):
        assert time.monotonic() < deadline, f"the background {prefix} threads never finished"
        time.sleep(0.01)


def test_positions_are_mapped_in_the_background_when_memory_allows(tmp_path, monkeypatch):
    path = _segment(tmp_path)
    monkeypatch.setattr(mapping, "BACKGROUND_CHUNK", 1 << 20)  # 8 MB of positions: 8 chunks
    segment = Segment(path)
    _wait_for_mappers()
    assert _mapped_kb(path) * 1024 >= segment.positions.nbytes + segment.remainders.nbytes
    del segment


def test_positions_stay_lazy_where_memory_is_short_and_answers_do_not_change(tmp_path,
                                                                            monkeypatch):
    path = _segment(tmp_path)
    monkeypatch.setattr(mapping, "BACKGROUND_CHUNK", 1 << 20)
    monkeypatch.setattr(mapping, "memory_available", lambda: 4 << 20)  # less than 2x 8 MB
    lazy = Segment(path)
    _wait_for_mappers()
    assert _mapped_kb(path) * 1024 < lazy.positions.nbytes + lazy.remainders.nbytes
    keys = np.arange(0, 1 << 30, 1 << 12, dtype=np.uint32)
    first, count = lazy.ranges(keys)
    answer = lazy.read_runs(first, count)
    monkeypatch.undo()
    eager = Segment(path)
    _wait_for_mappers()
    for a, b in zip(answer, eager.read_runs(*eager.ranges(keys))):
        assert a.tolist() == b.tolist()
    assert answer[0].size > 0
    del lazy, eager


def test_memory_available_is_a_positive_byte_count_on_linux():
    available = mapping.memory_available()
    assert available is not None and available > 1 << 20


def _anon_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith("RssAnon:"))
    return int(line.split()[1]) / 1024


def test_freed_heap_pages_go_back_to_the_kernel():
    # 200 MB of 4 KB blocks freed with the last one kept: free() cannot shrink the heap past a
    # live block, so its pages stay resident until they are handed back
    blocks = [bytearray(4096) for _ in range(50_000)]
    last = blocks.pop()
    del blocks
    before = _anon_mb()
    assert mapping.release_freed_memory()
    assert before - _anon_mb() > 100
    assert len(last) == 4096


def _locked_kb(path: Path) -> int:
    return _mapped_kb(path, "Locked")


def _keyed_segment(tmp_path: Path) -> Path:
    """A segment of the keyed layout with both tiers: 20,000 keys of 1-200 postings."""
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 200, 20_000)
    keys = np.repeat(rng.choice(1 << 30, counts.size, replace=False), counts).astype(np.uint32)
    path = tmp_path / "keyed.pst"
    write_segment(path, keys, np.zeros(keys.size, np.uint32), np.arange(keys.size), key_bits=30,
                  layout="keyed")
    return path


def test_a_keyed_segments_hot_tier_is_locked_and_its_cold_postings_stay_lazy(tmp_path,
                                                                            monkeypatch):
    path = _keyed_segment(tmp_path)
    monkeypatch.setattr(mapping, "BACKGROUND_CHUNK", 1 << 18)
    segment = Segment(path)
    assert segment.keyed and 0 < segment.hot_count < len(segment)
    _wait_for_mappers("nanhu-lock")
    hot_bytes = segment.hot_count * 4 + segment.key_counts.nbytes * 2
    locked = _locked_kb(path) * 1024
    assert hot_bytes <= locked < hot_bytes + (len(segment) - segment.hot_count) * 4
    del segment
    monkeypatch.setenv(mapping.LOCK_ENV, "0")  # turned off: populated, nothing locked
    unlocked = Segment(path)
    _wait_for_mappers()
    assert _locked_kb(path) == 0
    del unlocked


def test_the_hot_tier_is_not_locked_where_memory_is_short(tmp_path, monkeypatch):
    path = _keyed_segment(tmp_path)
    monkeypatch.setattr(mapping, "memory_available", lambda: 1 << 20)
    segment = Segment(path)
    _wait_for_mappers("nanhu-lock")
    assert _locked_kb(path) == 0
    del segment


def test_a_memory_cgroup_limit_bounds_the_memory_available(tmp_path, monkeypatch):
    """cgroup v1 (the memory controller's own hierarchy) and v2 (the unified one); page cache
    charged to the group counts as room."""
    real = Path
    v1 = tmp_path / "sys/fs/cgroup/memory/jobs/a"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(str(8 << 30))
    (v1 / "memory.usage_in_bytes").write_text(str(3 << 30))
    v2 = tmp_path / "sys/fs/cgroup/jobs/b"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text(str(6 << 30))
    (v2 / "memory.current").write_text(str(3 << 30))
    (v2 / "memory.stat").write_text(f"anon {1 << 30}\nactive_file {1 << 30}\n"
                                    f"inactive_file {1 << 30}\n")  # 2 GiB of it reclaimable
    files = {"/proc/self/cgroup": "12:memory:/jobs/a\n"}

    def fake(name, *rest):
        text = str(name)
        if text in files:
            target = tmp_path / "self-cgroup"
            target.write_text(files[text])
            return real(target)
        if text.startswith("/sys/fs/cgroup"):
            return real(str(tmp_path) + text)
        return real(name, *rest)

    monkeypatch.setattr(mapping, "Path", fake)
    assert mapping._cgroup_room() == 5 << 30
    files["/proc/self/cgroup"] = "0::/jobs/b\n"
    assert mapping._cgroup_room() == 5 << 30
    (v2 / "memory.max").write_text("max")
    assert mapping._cgroup_room() is None


def _resident_pages(array: np.ndarray) -> np.ndarray:
    """Whether each page of a mapped ``array``'s buffer is in the page cache (mincore(2))."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    base = array.ctypes.data - array.ctypes.data % page
    n = (array.ctypes.data + array.nbytes - base + page - 1) // page
    out = (ctypes.c_ubyte * n)()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    assert libc.mincore(ctypes.c_void_p(base), ctypes.c_size_t(n * page), out) == 0
    return np.frombuffer(out, np.uint8) & 1 == 1


def test_prefetch_reads_the_asked_pages_and_only_those(tmp_path, monkeypatch):
    import mmap
    import os

    page = mmap.PAGESIZE
    path = tmp_path / "cold.bin"
    path.write_bytes(np.random.default_rng(0).bytes(256 * page))
    with open(path, "rb") as handle:  # written and synced: clean pages the kernel can drop
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    array = np.memmap(path, np.uint8, "r")
    assert not _resident_pages(array).any()
    assert mapping.prefetch(array, np.array([0]), np.array([page])) == 0  # off by default
    monkeypatch.setenv(mapping.PREFETCH_ENV, "1")
    # two overlapping ranges, one inside a page, one over three: two page ranges asked for
    starts = np.array([10 * page + 5, 10 * page + 100, 200 * page - 1])
    stops = np.array([10 * page + 50, 11 * page + 1, 202 * page])
    assert mapping.prefetch(array, starts, stops) == 2
    wanted = np.zeros(256, bool)
    wanted[[10, 11, 199, 200, 201]] = True
    deadline = time.monotonic() + 10
    while not _resident_pages(array)[wanted].all():  # the reads complete in the background
        assert time.monotonic() < deadline, "the asked pages never arrived"
        time.sleep(0.01)
    assert not _resident_pages(array)[~wanted].any()
    assert mapping.prefetch(array, stops, starts) == 0  # empty ranges ask nothing


def test_a_lookup_asks_for_its_cold_runs_together_and_answers_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv(mapping.PREFETCH_ENV, "1")
    segment = Segment(_keyed_segment(tmp_path))
    asked = []
    real = mapping.prefetch
    monkeypatch.setattr(mapping, "prefetch", lambda a, s, e: asked.append((s, e)) or real(a, s, e))
    mixed, _ = segment.keys_in(0, 1 << segment.dir_bits)
    first, count = segment.ranges(unmix_keys(np.unique(mixed), segment.key_bits)[::7])
    got = segment.read_runs(first, count)
    cold = first >= segment.hot_count
    assert cold.any() and (~cold).any() and len(asked) == 1
    np.testing.assert_array_equal(asked[0][0], first[cold] * 4)
    np.testing.assert_array_equal(asked[0][1], (first + count)[cold] * 4)
    monkeypatch.setenv(mapping.PREFETCH_ENV, "0")  # the default: nothing asked, same answer
    for a, b in zip(got, segment.read_runs(first, count)):
        np.testing.assert_array_equal(a, b)
