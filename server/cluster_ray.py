"""Serving a cluster catalog on Ray: shard replicas and writers as Ray actors, and the
:class:`RayFanout` the front door's :class:`~nanhu.engine.cluster.view.ShardedCatalog` asks.

Per shard ``i`` of a cluster named ``NAME`` (the cluster directory's name unless given):

- ``nanhu:NAME:replica:i:r`` (r = 0 .. replicas-1): a :class:`ShardActor` replica holding the shard
  open read-only (:class:`~nanhu.engine.cluster.shard.ShardReads`); each ``state`` call picks up
  the shard's new commits, so replicas never need a restart to see registrations;
- ``nanhu:NAME:writer:i``: a :class:`ShardActor` writer (:class:`~nanhu.engine.cluster.writes.ShardWrites`),
  the shard's one writer; every call is one commit of the shard's catalog, so a writer that
  dies loses nothing committed and leaves nothing half-written (the embedded commit rules).

Actors are detached (they outlive the command that started them) and restarted by Ray when they
die (``max_restarts=-1``); a call in flight on a dead actor is not retried (``max_task_retries
= 0``): the fanout tries another replica of the shard, and when none answers it reports the
shard missing, and the answer is flagged partial. Where a shard's entry in ``cluster.json``
names a ``resource``, its actors are placed on the node that offers that custom resource (the
node whose local disk holds the shard; docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from nanhu.engine.cluster.layout import ClusterLayout
from nanhu.engine.cluster.view import MISSING

log = logging.getLogger("nanhu.server.cluster")

NAMESPACE = "nanhu"
#: exceptions that mean "this replica did not answer" (dead, restarting, unreachable)
_GONE: tuple[type[BaseException], ...] = (RayActorError, GetTimeoutError)
try:  # Ray 2.x names for an actor that is restarting or unreachable
    from ray.exceptions import ActorUnavailableError

    _GONE = (*_GONE, ActorUnavailableError)
except ImportError:  # pragma: no cover - older Ray
    pass


@ray.remote(max_restarts=-1, max_task_retries=0)
class ShardActor:
    """A shard's read replica (``kind="replica"``: :class:`~nanhu.engine.cluster.shard.ShardReads`)
    or its one writer (``kind="writer"``: :class:`~nanhu.engine.cluster.writes.ShardWrites`);
    see the module docstring."""

    def __init__(self, kind: str, path: str) -> None:
        if kind == "replica":
            from nanhu.engine.cluster.shard import ShardReads

            self.target = ShardReads(path)
        else:
            from nanhu.engine.cluster.writes import ShardWrites

            self.target = ShardWrites(path)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.target, method)(*args)

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()


def cluster_name(layout: ClusterLayout) -> str:
    return str(layout.extra.get("name") or layout.root.resolve().name)


def replica_name(name: str, shard: int, replica: int) -> str:
    return f"nanhu:{name}:replica:{shard}:{replica}"


def writer_name(name: str, shard: int) -> str:
    return f"nanhu:{name}:writer:{shard}"


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://...``) once per
    process."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, ignore_reinit_error=True,
                 log_to_driver=False, configure_logging=False)


def _options(layout: ClusterLayout, shard: int, *, num_cpus: float) -> dict:
    options: dict = {"lifetime": "detached", "num_cpus": num_cpus, "get_if_exists": True,
                     "namespace": NAMESPACE}
    resource = (layout.extra.get("resources") or {}).get(layout.shard_names[shard])
    if resource:
        options["resources"] = {resource: 0.001}
    return options


def start_actors(layout: ClusterLayout, *, replicas: int = 1, num_cpus: float = 0.0) -> dict:
    """Start (or find) every shard's replicas and writer; returns their names. Waits until each
    has opened its shard, so a bad shard path fails here, naming the shard."""
    name = cluster_name(layout)
    started = []
    for shard in range(layout.n_shards):
        path = str(layout.shard_dir(shard))
        for r in range(replicas):
            started.append(ShardActor.options(name=replica_name(name, shard, r),
                                              **_options(layout, shard, num_cpus=num_cpus)
                                              ).remote("replica", path))
        started.append(ShardActor.options(name=writer_name(name, shard),
                                          **_options(layout, shard, num_cpus=num_cpus)
                                          ).remote("writer", path))
    ray.get([a.pid.remote() for a in started])
    log.info("cluster %s: %d shards, %d replicas each, and a writer each are up", name,
             layout.n_shards, replicas)
    return {"name": name, "actors": len(started)}


def stop_actors(layout: ClusterLayout, *, replicas: int = 1) -> int:
    """Kill the cluster's actors (no restart); returns how many were found."""
    name = cluster_name(layout)
    killed = 0
    for shard in range(layout.n_shards):
        names = [replica_name(name, shard, r) for r in range(replicas)] + [
            writer_name(name, shard)]
        for actor_name in names:
            try:
                ray.kill(ray.get_actor(actor_name, namespace=NAMESPACE), no_restart=True)
                killed += 1
            except ValueError:
                continue
    return killed


class RayFanout:
    """Calls shard actors in parallel (:class:`~nanhu.engine.cluster.view.Fanout`).

    kind : "replica" (reads) or "writer". A call goes to one replica of each shard (round
    robin by query); a replica that does not answer within ``timeout_s`` or is dead is skipped for the
    next one, and a shard whose replicas all failed gives :data:`MISSING` (logged). Errors the
    shard itself raises (a bad argument, a lock) come back as they are."""

    def __init__(self, layout: ClusterLayout, *, kind: str = "replica", replicas: int = 1,
                 timeout_s: float = 30.0) -> None:
        self.layout = layout
        self.n_shards = layout.n_shards
        self.kind = kind
        self.replicas = replicas if kind == "replica" else 1
        self.timeout_s = timeout_s
        self.name = cluster_name(layout)
        self._handles: dict[tuple[int, int], Any] = {}
        self._next = 0
        self._lock = threading.Lock()

    def _handle(self, shard: int, replica: int):
        key = (shard, replica)
        if key not in self._handles:
            name = (replica_name(self.name, shard, replica) if self.kind == "replica"
                    else writer_name(self.name, shard))
            self._handles[key] = ray.get_actor(name, namespace=NAMESPACE)
        return self._handles[key]

    def _submit(self, shard: int, replica: int, method: str, args: tuple):
        try:
            return self._handle(shard, replica).call.remote(method, *args)
        except ValueError:  # no such actor (never started, or killed for good)
            self._handles.pop((shard, replica), None)
            return None

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        # Replicas take turns query by query (a query starts with "checked", its first call
        # carrying the state check, or with "state"); within a query every call goes to the same
        # replica, which picked up the commits and holds the spans its own lookups kept.
        with self._lock:
            if method in ("state", "checked"):
                self._next = (self._next + 1) % self.replicas
            first = self._next
        # A large argument that several shards' calls share goes into the object store once;
        # anything else travels inline with its call (Ray inlines up to 100 KB), which is faster
        # than a store round trip.
        uses: dict[int, int] = {}
        for _, args in calls:
            for a in args:
                uses[id(a)] = uses.get(id(a), 0) + 1
        shared: dict[int, Any] = {}

        def put(args: tuple) -> tuple:
            out = []
            for a in args:
                size = getattr(a, "nbytes", 0) or (len(a) if isinstance(a, bytes) else 0)
                if size > 100 * 1024 and uses[id(a)] > 1:
                    if id(a) not in shared:
                        shared[id(a)] = ray.put(a)
                    out.append(shared[id(a)])
                else:
                    out.append(a)
            return tuple(out)

        calls = [(shard, put(args)) for shard, args in calls]
        pending = [self._submit(shard, first, method, args) for shard, args in calls]
        deadline = time.monotonic() + self.timeout_s
        if all(ref is not None for ref in pending):
            try:  # one wait for every shard; a failure is sorted out shard by shard below
                return ray.get(pending, timeout=self.timeout_s)
            except (RayTaskError, *_GONE):
                pass
        results: list = []
        for (shard, args), ref in zip(calls, pending):
            results.append(self._collect(shard, first, method, args, ref, deadline))
        return results

    def _collect(self, shard: int, first: int, method: str, args: tuple, ref, deadline: float):
        tried = 0
        replica = first
        while tried < self.replicas:
            if ref is not None:
                try:
                    return ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                except RayTaskError as exc:
                    # the shard itself raised (a bad argument, a taken id): the engine's own
                    # error, without Ray's remote traceback (it names the node's paths)
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                except _GONE as exc:
                    log.warning("shard %s replica %d did not answer %s: %s",
                                self.layout.shard_names[shard], replica, method,
                                type(exc).__name__)
                    self._handles.pop((shard, replica), None)
            tried += 1
            replica = (replica + 1) % self.replicas
            if tried < self.replicas:
                ref = self._submit(shard, replica, method, args)
        log.warning("shard %s missing: no %s answered %s", self.layout.shard_names[shard],
                    self.kind, method)
        return MISSING
