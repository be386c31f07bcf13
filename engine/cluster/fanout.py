"""How the cluster view asks its shards: the :class:`Fanout` protocol, :data:`MISSING` for a shard
that did not answer, :class:`LocalFanout` (every shard opened in this process) and
:func:`keys_token`. The Ray transport is :class:`nanhu.server.cluster_ray.RayFanout`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Fanout(Protocol):
    """Calls one :class:`~nanhu.engine.cluster.shard.ShardReads` method on several shards."""

    n_shards: int

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        """``[result or MISSING for each (shard, args) in calls]``: ``method(*args)`` on each
        shard, all asked in parallel where the transport allows; a shard with no live replica
        gives :data:`MISSING`."""


def keys_token(keys: np.ndarray) -> str:
    """A short name for an array of keys (BLAKE2b of its bytes), so that the second phase of a
    lookup can name the keys of the first instead of sending them again."""
    return hashlib.blake2b(np.ascontiguousarray(keys, np.uint32).tobytes(),
                           digest_size=16).hexdigest()


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: what a :class:`Fanout` returns for a shard that did not answer
MISSING = _Missing()


class LocalFanout:
    """Every shard opened in this process (:class:`~nanhu.engine.cluster.shard.ShardReads`):
    the cluster without Ray, for one machine, for tests and as the differential twin."""

    def __init__(self, shard_dirs: Sequence[str]) -> None:
        from nanhu.engine.cluster.shard import ShardReads

        self.shards = [ShardReads(str(d)) for d in shard_dirs]
        self.n_shards = len(self.shards)

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        return [getattr(self.shards[s], method)(*args) for s, args in calls]

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
