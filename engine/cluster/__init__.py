"""A catalog split into shards: placement, the cluster layout, shard reads and the federated
view the matcher runs over (no Ray here: :mod:`nanhu.server.cluster_ray` serves the shards as
Ray actors through the same :class:`~nanhu.engine.cluster.view.Fanout` interface)."""
