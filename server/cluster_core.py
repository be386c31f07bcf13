"""The server's engine calls on a cluster catalog: :class:`ClusterCore`, the
:class:`~nanhu.server.service.Core` of ``nanhu serve --catalog CLUSTER_DIR [--cluster ADDRESS]``.

Same RPCs, auth, tenancy checks and policies as on one catalog; reads go through the cluster's
:class:`~nanhu.engine.cluster.view.ShardedCatalog`, writes through its
:class:`~nanhu.engine.cluster.writes.ClusterWriter`. With ``address`` the shards are the Ray
actors :mod:`nanhu.server.cluster_ray` started (``nanhu cluster start``); without, the shard
directories are opened in this process (one machine). Claims, keys and webhooks stay in the
cluster directory on the front door's node, as they stay in the catalog directory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from nanhu.engine.claims import ClaimStore
from nanhu.engine.cluster.layout import ClusterLayout
from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog
from nanhu.engine.cluster.writes import ClusterWriter, LocalWrites
from nanhu.engine.errors import PermissionDenied
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.policy import Policy
from nanhu.engine.store.catalog_records import Conflict, Reference
from nanhu.server.auth import Principal
from nanhu.server.service import Core, Limits, NewReference, Snapshots, may_accept

log = logging.getLogger("nanhu.server.cluster")

#: set by ``nanhu serve --cluster ADDRESS`` for the worker processes (they join the same Ray
#: cluster to screen)
ADDRESS_ENV = "NANHU_CLUSTER_ADDRESS"
REPLICAS_ENV = "NANHU_CLUSTER_REPLICAS"
#: "1": a window's looks left are asked together (engine/cluster/lookup.py, ``ahead``)
LOOKS_AHEAD_ENV = "NANHU_CLUSTER_LOOKS_AHEAD"
#: Ray's authentication settings, handed to the worker processes with each screening job
RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def open_view(cluster_dir: str | Path, *, address: str | None = None,
              replicas: int | None = None) -> tuple[ClusterLayout, ShardedCatalog, object]:
    """(layout, read view, write fanout) of a cluster: on Ray when ``address`` (or the
    environment's :data:`ADDRESS_ENV`) is set, else in this process."""
    layout = ClusterLayout.read(cluster_dir)
    address = address or os.environ.get(ADDRESS_ENV) or None
    replicas = replicas or int(os.environ.get(REPLICAS_ENV, "1") or 1)
    if address:
        from nanhu.server.cluster_ray import RayFanout, connect

        connect(address)
        reads, writes = (RayFanout(layout, replicas=replicas),
                         RayFanout(layout, kind="writer"))
    else:
        dirs = [str(layout.shard_dir(s)) for s in range(layout.n_shards)]
        reads, writes = LocalFanout(dirs), LocalWrites(dirs)
    view = ShardedCatalog(reads, name=str(layout.root), shard_names=layout.shard_names,
                          looks_ahead=os.environ.get(LOOKS_AHEAD_ENV) == "1")
    return layout, view, writes


class _Snapshots(Snapshots):
    """:class:`~nanhu.server.service.Snapshots` for a cluster: the one view, refreshed at most
    every ``interval_s`` (after each refresh the view's next call asks every shard for its
    generation too; :meth:`~nanhu.engine.cluster.view.ShardedCatalog.refresh`)."""

    def __init__(self, view: ShardedCatalog, interval_s: float) -> None:
        self.path = Path(view.path)
        self.refresh_interval_s = interval_s
        self._lock = threading.Lock()
        self._catalog = view
        self._checked = time.monotonic()

    @property
    def view(self) -> ShardedCatalog:
        return self._catalog

    def _reload(self) -> bool:
        return self._catalog.refresh()


class ClusterCore(Core):
    """:class:`~nanhu.server.service.Core` over a cluster (module docstring)."""

    def __init__(self, cluster_dir: Path, limits: Limits, *, address: str | None = None,
                 replicas: int | None = None) -> None:
        self.catalog_dir = Path(cluster_dir)
        self.limits = limits
        self.address = address  # the screening jobs join the same Ray cluster
        self.layout, view, writes = open_view(cluster_dir, address=address, replicas=replicas)
        # ... as this process joined it: the worker processes come from a forkserver that may
        # have started before Ray set its authentication mode here
        self.ray_env = {k: os.environ[k] for k in RAY_ENV if k in os.environ}
        self.snapshots = _Snapshots(view, limits.refresh_interval_s)
        self.cluster = ClusterWriter(self.layout, view, writes)
        self.claims = ClaimStore(self.catalog_dir)
        self.writer = None  # every write goes through self.cluster

    @property
    def view(self) -> ShardedCatalog:
        return self.snapshots.view

    def _commit_new(self, new: NewReference, fp: Fingerprint, metadata: dict) -> int:
        """Through the placement shard's writer, which finds that shard's overlaps."""
        _, overlaps = self.cluster.register(new.reference_id, fp,
                                            title=new.title or new.reference_id,
                                            owner=new.owner, metadata=metadata,
                                            policy=new.policy or {})
        return overlaps

    def delete(self, principal: Principal, ref_id: str) -> Reference:
        self.snapshots.refresh()
        reference = self.view.get(ref_id)
        principal.require_owner(reference.owner, f"reference {ref_id!r}")
        self.cluster.delete(ref_id)
        self.snapshots.refresh()
        log.info("deleted reference=%s owner=%s", ref_id, reference.owner or "-")
        return reference

    def set_policy(self, principal: Principal, ref_id: str, policy: dict) -> Reference:
        self.snapshots.refresh()
        reference = self.view.get(ref_id)
        principal.require_owner(reference.owner, f"reference {ref_id!r}")
        self.cluster.set_policy(ref_id, policy)
        self.snapshots.refresh()
        return self.view.get(ref_id)

    def set_owner_policy(self, principal: Principal, owner: str,
                         policy: dict) -> tuple[str, Policy | None]:
        owner = self._policy_owner(principal, owner)
        self.cluster.set_owner_policy(owner, policy)
        self.snapshots.refresh()
        return owner, self.view.owner_policy(owner)

    def set_owner(self, principal: Principal, ref_id: str, owner: str) -> Reference:
        if not principal.is_admin:
            raise PermissionDenied("only an admin key can assign or transfer a work's owner")
        self.cluster.set_owner(ref_id, owner)
        self.snapshots.refresh()
        return self.view.get(ref_id)

    def resolve_conflict(self, principal: Principal, conflict_id: int, note: str) -> Conflict:
        self.snapshots.refresh()
        may_accept(principal, conflict_id, self.view.conflicts())
        self.cluster.resolve_conflict(conflict_id, by=principal.tenant or "admin", note=note)
        self.snapshots.refresh()
        return next(c for c in self.view.conflicts(include_resolved=True)
                    if c.conflict_id == conflict_id)
