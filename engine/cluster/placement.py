"""Which shard holds a reference: a stable hash of its id, documented so that a shard can be
rebuilt from the registration log or re-ingested by anyone.

The rule (``placement: "jump-sha256-v1"`` in ``cluster.json``)::

    key   = first 8 bytes of SHA-256(reference id as UTF-8), big-endian unsigned
    shard = jump_hash(key, n_shards)

``jump_hash`` is Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory, Consistent
Hash Algorithm", 2014): going from n to n + 1 shards moves exactly the references whose new
shard is the new one, about 1/(n + 1) of them, and no reference moves between old shards.
So ``nanhu cluster rebalance`` after adding shards copies only what must move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

PLACEMENT = "jump-sha256-v1"

_MULTIPLIER = np.uint64(2862933555777941757)
_MASK = (1 << 64) - 1


def id_key(ref_id: str) -> int:
    """The 64-bit placement key of a reference id."""
    return int.from_bytes(hashlib.sha256(ref_id.encode("utf-8")).digest()[:8], "big")


def jump_hash(keys: np.ndarray, n_buckets: int) -> np.ndarray:
    """Jump consistent hash of each 64-bit key into ``[0, n_buckets)``.

    keys : ndarray [shape=(n,)], uint64
    Returns int64[n]. Vectorised over the keys: every key takes a few dozen jumps at most
    (about ln(n_buckets)), all keys stepped together until each has jumped past the end.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1 (got {n_buckets})")
    key = np.asarray(keys, np.uint64).copy()
    b = np.full(key.shape, -1, np.int64)
    j = np.zeros(key.shape, np.int64)
    live = np.ones(key.shape, bool)
    with np.errstate(over="ignore"):
        while live.any():
            b[live] = j[live]
            key[live] = key[live] * _MULTIPLIER + np.uint64(1)
            step = ((key[live] >> np.uint64(33)) + np.uint64(1)).astype(np.float64)
            j[live] = ((b[live] + 1).astype(np.float64) * (float(1 << 31) / step)).astype(np.int64)
            live &= j < n_buckets
    return b


def shard_of(ref_id: str, n_shards: int) -> int:
    """The shard (0-based) that holds ``ref_id`` in a cluster of ``n_shards``."""
    return int(jump_hash(np.array([id_key(ref_id)], np.uint64), n_shards)[0])


def shards_of(ref_ids: Iterable[str], n_shards: int) -> np.ndarray:
    """:func:`shard_of` of many ids at once (int64[n])."""
    keys = np.array([id_key(r) for r in ref_ids], np.uint64)
    return jump_hash(keys, n_shards) if keys.size else np.zeros(0, np.int64)
