"""The brute-force twin of the audio postings store (:class:`BruteForcePostings`), obviously
correct, that differential tests hold :class:`~engine.store.postings.SegmentPostings` to."""

from __future__ import annotations

import numpy as np


class BruteForcePostings:
    """A dict of lists: the obviously correct twin used in differential tests."""

    def __init__(self) -> None:
        self.table: dict[int, list[tuple[int, int]]] = {}

    def add(self, ordinal: int, keys: np.ndarray, frames: np.ndarray) -> None:
        for key, frame in zip(keys.tolist(), frames.tolist()):
            self.table.setdefault(key, []).append((ordinal, max(frame, 0)))

    def delete(self, ordinal: int) -> None:
        for key in list(self.table):
            self.table[key] = [p for p in self.table[key] if p[0] != ordinal]

    def __len__(self) -> int:
        return sum(len(v) for v in self.table.values())

    def lookup(self, keys: np.ndarray, *, max_postings: int | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = [len(self.table.get(key, [])) for key in np.asarray(keys).tolist()]
        allowed = set(range(len(counts))) if max_postings is None else {
            i for i, c in enumerate(counts) if c <= max_postings}
        if budget is not None and sum(counts[i] for i in allowed) > budget:
            spent, chosen = 0, set()
            for i in sorted(allowed, key=lambda i: (counts[i], i)):  # rarest first
                spent += counts[i]
                if spent > budget:
                    break
                chosen.add(i)
            allowed = chosen
        rows = [
            (index, ordinal, frame)
            for index, key in enumerate(np.asarray(keys).tolist()) if index in allowed
            for ordinal, frame in self.table.get(key, [])
        ]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        array = np.array(rows, np.int64)
        return array[:, 0], array[:, 1].astype(np.uint32), array[:, 2].astype(np.uint32)


def select_sorted(per_key: np.ndarray, *, max_postings: int | None,
                  budget: int | None) -> np.ndarray:
    """:func:`~engine.store.postings.select` as a stable sort of the keys by posting count,
    the rarest first while their total fits: its twin in the tests."""
    keep = per_key <= max_postings if max_postings is not None else np.ones(per_key.size, bool)
    if budget is not None and int(per_key[keep].sum()) > budget:
        order = np.flatnonzero(keep)[np.argsort(per_key[keep], kind="stable")]
        taken = order[np.cumsum(per_key[order]) <= budget]
        keep = np.zeros(per_key.size, bool)
        keep[taken] = True
    return keep
