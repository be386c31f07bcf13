"""Which pages of a segment file are mapped at open (engine.store.mapping)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from nanhu.engine.store import mapping
from nanhu.engine.store.postings import Segment, write_segment


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def _segment(tmp_path: Path, n: int = 2_000_000) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "big.pst"
    write_segment(path, rng.integers(0, 1 << 30, n).astype(np.uint32),
                  np.repeat(np.arange(200, dtype=np.uint32), n // 200), np.arange(n) % 10_000,
                  key_bits=30)
    return path


def _wait_for_mappers() -> None:
    deadline = time.monotonic() + 30
    while any(t.name.startswith("nanhu-map") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the background mapping never finished"
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
