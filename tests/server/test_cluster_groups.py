"""Which shards one replica actor holds (server/cluster_ray.py): a node's shards together, by
the resource cluster.json maps them to; one each when asked; a lone shard's actor keeps the
per-shard name."""

from __future__ import annotations

from pathlib import Path

from nanhu.engine.cluster.layout import ClusterLayout


def _layout(n: int, **extra) -> ClusterLayout:
    names = [f"shard-{i:03d}" for i in range(n)]
    return ClusterLayout(root=Path("/nowhere/cluster"), shard_names=names, shard_paths=names,
                         audio_params={}, extra=dict(extra))


def test_a_nodes_shards_share_one_replica_actor():
    from nanhu.server.cluster_ray import group_name, holder_name, replica_groups, replica_name

    assert replica_groups(_layout(4)) == [(0, 1, 2, 3)]  # no resources: one node's worth
    placed = _layout(5, resources={"shard-001": "disk-b", "shard-003": "disk-b",
                                   "shard-004": "disk-c"})
    assert replica_groups(placed) == [(0, 2), (1, 3), (4,)]
    assert holder_name(placed, 3, 1) == "nanhu:cluster:replica:1+3:1"
    assert holder_name(placed, 4, 0) == replica_name("cluster", 4, 0)  # one shard: as before
    assert group_name("c", (2,), 0) == replica_name("c", 2, 0)
    assert replica_groups(_layout(3, replica_per_shard=True)) == [(0,), (1,), (2,)]
