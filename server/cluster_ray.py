"""Serving a cluster catalog on Ray: shard replicas and writers as Ray actors, and the
:class:`RayFanout` the front door's :class:`~nanhu.engine.cluster.view.ShardedCatalog` asks.

Per node of a cluster named ``NAME`` (the cluster directory's name unless given), and per shard
``i``:

- ``nanhu:NAME:replica:S:r`` (r = 0 .. replicas-1): a :class:`ShardActor` replica holding the
  shards ``S`` of one node open read-only (:class:`~nanhu.engine.cluster.shard.ShardReads`), ``S``
  their numbers joined by ``+`` (``2``, or ``0+1+3``; :func:`replica_groups`). One actor answers
  all of a node's shards, so a round trip of the view is one call a node, not one a shard.
  A query's calls go over the replica's direct connection
  (:mod:`nanhu.server.cluster_channel`: ~0.15 ms a call here, against 1.1-2.6 ms for a Ray task),
  and through Ray when that connection fails. ``"replica_per_shard": true`` in
  ``cluster.json`` gives each shard its own replica actors instead. Each query's first call
  picks up the shards' new commits, so replicas never need a restart to see registrations;
- ``nanhu:NAME:writer:i``: a :class:`ShardActor` writer (:class:`~nanhu.engine.cluster.writes.ShardWrites`),
  the shard's one writer; every call is one commit of the shard's catalog, so a writer that
  dies loses nothing committed and leaves nothing half-written (the embedded commit rules).

Actors are detached (they outlive the command that started them) and restarted by Ray when they
die (``max_restarts=-1``); a call in flight on a dead actor is not retried (``max_task_retries
= 0``): the fanout tries another replica of the shards, and when none answers it reports them
missing, and the answer is flagged partial (a node's replica lost loses its shards together,
as the node itself would). Where a shard's entry in ``cluster.json``
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
from nanhu.server.cluster_channel import Channels, ChannelServer, Failed

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

    def __init__(self, kind: str, path: str | dict[int, str]) -> None:
        # one call at a time, whether it came as a Ray task or over the channel
        self._lock = threading.Lock()
        self._channel: ChannelServer | None = None
        if kind == "replica":
            from nanhu.engine.cluster.shard import ShardReads

            # a node's shards {shard: path}; or one shard's path, answered whatever its number
            self.shards = ({int(s): ShardReads(p) for s, p in path.items()}
                           if isinstance(path, dict) else {})
            self.target = (next(iter(self.shards.values())) if self.shards
                           else ShardReads(str(path)))
            self._channel = ChannelServer(self._answer, self._lock,
                                          ray.util.get_node_ip_address())
        else:
            from nanhu.engine.cluster.writes import ShardWrites

            self.shards = {}
            self.target = ShardWrites(path)

    def call_shards(self, method: str, calls: list[tuple[int, tuple]]) -> list:
        """``method(*args)`` on each (shard, args) of the shards this actor holds, in one task
        (a writer holds one). An argument several actors share comes as one object in the
        store (:meth:`RayFanout.call_each`): nested in ``calls``, Ray leaves it to this to get."""
        refs = {id(a): a for _, args in calls for a in args if isinstance(a, ray.ObjectRef)}
        got = dict(zip(refs, ray.get(list(refs.values())))) if refs else {}
        calls = [(shard, tuple(got.get(id(a), a) if isinstance(a, ray.ObjectRef) else a
                               for a in args)) for shard, args in calls]
        with self._lock:
            return self._answer(method, calls)

    def _answer(self, method: str, calls: list[tuple[int, tuple]]) -> list:
        return [getattr(self.shards[shard] if self.shards else self.target, method)(*args)
                for shard, args in calls]

    def channel(self) -> tuple[tuple[str, int], bytes]:
        """The address and key of this replica's direct connection
        (:mod:`nanhu.server.cluster_channel`), asked through Ray."""
        if self._channel is None:
            raise RuntimeError("a writer has no channel")
        return self._channel.address, self._channel.authkey

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()


def cluster_name(layout: ClusterLayout) -> str:
    return str(layout.extra.get("name") or layout.root.resolve().name)


def replica_name(name: str, shard: int, replica: int) -> str:
    return f"nanhu:{name}:replica:{shard}:{replica}"


def replica_groups(layout: ClusterLayout) -> list[tuple[int, ...]]:
    """The shards each replica actor holds: a node's shards together (those mapped to one
    resource in ``cluster.json``'s ``"resources"``, and those mapped to none), or one shard
    each with ``"replica_per_shard": true``."""
    if layout.extra.get("replica_per_shard"):
        return [(s,) for s in range(layout.n_shards)]
    resources = layout.extra.get("resources") or {}
    groups: dict[str, list[int]] = {}
    for shard, shard_name in enumerate(layout.shard_names):
        groups.setdefault(str(resources.get(shard_name) or ""), []).append(shard)
    return sorted(tuple(g) for g in groups.values())


def group_name(name: str, group: Sequence[int], replica: int) -> str:
    """A replica actor's name (for a group of one shard, :func:`replica_name`)."""
    return f"nanhu:{name}:replica:{'+'.join(str(s) for s in group)}:{replica}"


def holder_name(layout: ClusterLayout, shard: int, replica: int) -> str:
    """The name of replica ``replica`` of the actor that holds ``shard``."""
    group = next(g for g in replica_groups(layout) if shard in g)
    return group_name(cluster_name(layout), group, replica)


def writer_name(name: str, shard: int) -> str:
    return f"nanhu:{name}:writer:{shard}"


#: Ray's system setting for the largest object a call's arguments or reply carry inline (Ray's
#: default 100 KiB); larger ones go through the object store, ~3.5 ms more CPU a call here. A
#: later look's keys are up to ~110 kB and a lone shard's postings up to ~350 kB on the 18.5 h
#: catalog, so the actors (their runtime environment) and the front door (:func:`connect`) raise
#: it (docs/results/cluster-fanout-2026-12-02b/).
INLINE_ENV = "RAY_max_direct_call_object_size"
INLINE_BYTES = 1 << 20


#: ``0`` in the front door's environment: every call to a replica is a Ray task (no direct
#: connection; :mod:`nanhu.server.cluster_channel`)
DIRECT_ENV = "NANHU_CLUSTER_DIRECT"


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://...``) once per
    process; this process's calls carry up to :data:`INLINE_BYTES` inline (unless its
    environment sets :data:`INLINE_ENV`)."""
    if not ray.is_initialized():
        os.environ.setdefault(INLINE_ENV, str(INLINE_BYTES))
        ray.init(address=address, namespace=NAMESPACE, ignore_reinit_error=True,
                 log_to_driver=False, configure_logging=False)


def _options(layout: ClusterLayout, shard: int, *, num_cpus: float) -> dict:
    options: dict = {"lifetime": "detached", "num_cpus": num_cpus, "get_if_exists": True,
                     "namespace": NAMESPACE,
                     "runtime_env": {"env_vars": {
                         INLINE_ENV: os.environ.get(INLINE_ENV, str(INLINE_BYTES))}}}
    resource = (layout.extra.get("resources") or {}).get(layout.shard_names[shard])
    if resource:
        options["resources"] = {resource: 0.001}
    return options


def start_actors(layout: ClusterLayout, *, replicas: int = 1, num_cpus: float = 0.0) -> dict:
    """Start (or find) every shard's replicas and writer; returns their names. Waits until each
    has opened its shard, so a bad shard path fails here, naming the shard."""
    name = cluster_name(layout)
    started = []
    for group in replica_groups(layout):
        paths = {s: str(layout.shard_dir(s)) for s in group}
        for r in range(replicas):
            started.append(ShardActor.options(name=group_name(name, group, r),
                                              **_options(layout, group[0], num_cpus=num_cpus)
                                              ).remote("replica", paths))
    for shard in range(layout.n_shards):
        path = str(layout.shard_dir(shard))
        started.append(ShardActor.options(name=writer_name(name, shard),
                                          **_options(layout, shard, num_cpus=num_cpus)
                                          ).remote("writer", path))
    ray.get([a.pid.remote() for a in started])
    log.info("cluster %s: %d shards, %d replicas each, and a writer each are up", name,
             layout.n_shards, replicas)
    return {"name": name, "actors": len(started)}


def stop_actors(layout: ClusterLayout, *, replicas: int = 1) -> int:
    """Kill the cluster's actors (no restart); returns how many were found. Replica actors
    of an earlier grouping of the shards (before ``add-shards``, or with or without
    ``"replica_per_shard"``) go too."""
    name = cluster_name(layout)
    killed = 0
    names = {group_name(name, group, r) for group in replica_groups(layout)
             for r in range(replicas)} | {writer_name(name, s) for s in range(layout.n_shards)}
    names |= {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
              if a.get("namespace") == NAMESPACE
              and str(a["name"]).startswith(f"nanhu:{name}:replica:")}
    for actor_name in sorted(names):
        try:
            ray.kill(ray.get_actor(actor_name, namespace=NAMESPACE), no_restart=True)
            killed += 1
        except ValueError:
            continue
    return killed


class RayFanout:
    """Calls shard actors in parallel (:class:`~nanhu.engine.cluster.view.Fanout`).

    kind : "replica" (reads) or "writer". A call goes to one replica of each shard (round
    robin by query), one Ray task for all the shards one replica actor holds
    (:func:`replica_groups`); a replica that does not answer within ``timeout_s`` or is dead
    is skipped for the next one, and shards whose replicas all failed give :data:`MISSING`
    (logged). Errors a shard itself raises (a bad argument, a lock) come back as they are."""

    def __init__(self, layout: ClusterLayout, *, kind: str = "replica", replicas: int = 1,
                 timeout_s: float = 30.0) -> None:
        self.layout = layout
        self.n_shards = layout.n_shards
        self.kind = kind
        self.replicas = replicas if kind == "replica" else 1
        self.timeout_s = timeout_s
        self.name = cluster_name(layout)
        #: the shards each actor answers: a node's together for replicas, one each for writers
        self.units = (replica_groups(layout) if kind == "replica"
                      else [(s,) for s in range(self.n_shards)])
        self._unit_of = {s: u for u, group in enumerate(self.units) for s in group}
        self._handles: dict[tuple[int, int], Any] = {}
        self._next = 0
        self._lock = threading.Lock()
        #: the replicas' direct connections (:mod:`nanhu.server.cluster_channel`); None for
        #: writers, or with :data:`DIRECT_ENV` set to ``0`` (every call a Ray task)
        self.channels = (Channels(self._channel_of) if kind == "replica"
                         and os.environ.get(DIRECT_ENV, "1") != "0" else None)

    def _channel_of(self, key: tuple[int, int]) -> tuple[tuple[str, int], bytes]:
        return ray.get(self._handle(*key).channel.remote(), timeout=self.timeout_s)

    def _handle(self, unit: int, replica: int):
        key = (unit, replica)
        if key not in self._handles:
            name = (group_name(self.name, self.units[unit], replica) if self.kind == "replica"
                    else writer_name(self.name, self.units[unit][0]))
            self._handles[key] = ray.get_actor(name, namespace=NAMESPACE)
        return self._handles[key]

    def _submit(self, unit: int, replica: int, method: str, calls: list[tuple[int, tuple]]):
        try:
            return self._handle(unit, replica).call_shards.remote(method, calls)
        except ValueError:  # no such actor (never started, or killed for good)
            self._handles.pop((unit, replica), None)
            return None

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        # Replicas take turns query by query (a query starts with "checked", its first call
        # carrying the state check, or with "state"); within a query every call goes to the same
        # replica, which picked up the commits and holds the spans its own lookups kept.
        with self._lock:
            if method in ("state", "checked"):
                self._next = (self._next + 1) % self.replicas
            first = self._next
        by_unit: dict[int, list[int]] = {}  # unit -> the calls it answers (positions)
        for i, (shard, _) in enumerate(calls):
            by_unit.setdefault(self._unit_of[shard], []).append(i)
        # Over the replicas' direct connections first (replicas only); what they do not take
        # goes as Ray tasks, as does a call whose connection fails before it answers.
        sent: dict[int, Any] = {}
        if self.channels is not None:
            for u, where in by_unit.items():
                conn = self.channels.send((u, first), method, [calls[i] for i in where])
                if conn is not None:
                    sent[u] = conn
        # A large argument that several actors' Ray tasks share goes into the object store
        # once; anything else travels inline with its task (Ray inlines up to 100 KiB), which
        # is faster than a store round trip. Shards of one actor share it within the one task.
        users: dict[int, set[int]] = {}
        for unit, where in by_unit.items():
            if unit in sent:
                continue
            for i in where:
                for a in calls[i][1]:
                    users.setdefault(id(a), set()).add(unit)
        shared: dict[int, Any] = {}

        def put(args: tuple) -> tuple:
            out = []
            for a in args:
                size = getattr(a, "nbytes", 0) or (len(a) if isinstance(a, bytes) else 0)
                if size > 100 * 1024 and len(users[id(a)]) > 1:
                    if id(a) not in shared:
                        shared[id(a)] = ray.put(a)
                    out.append(shared[id(a)])
                else:
                    out.append(a)
            return tuple(out)

        asked = {u: [(calls[i][0], put(calls[i][1])) for i in where]
                 for u, where in by_unit.items() if u not in sent}
        pending = {u: self._submit(u, first, method, unit_calls)
                   for u, unit_calls in asked.items()}
        deadline = time.monotonic() + self.timeout_s
        got: dict[int, Any] = {}
        try:
            for u, conn in sent.items():
                try:
                    got[u] = self.channels.receive((u, first), conn, deadline)
                except Failed as exc:
                    log.info("shard %s: %s over its connection (%s); asked through Ray",
                             self._names(u), method, exc)
                    asked[u] = [calls[i] for i in by_unit[u]]
                    pending[u] = self._submit(u, first, method, asked[u])
        finally:  # a shard's error raised: the answers left unread would answer later calls
            for u in sent:
                if u not in got and u not in pending:
                    self.channels.drop((u, first))
        answers: list | None = None
        if pending and all(ref is not None for ref in pending.values()):
            try:  # one wait for every actor; a failure is sorted out actor by actor below
                answers = ray.get(list(pending.values()), timeout=self.timeout_s)
            except (RayTaskError, *_GONE):
                pass
        if answers is None:
            answers = [self._collect(u, first, method, asked[u], ref, deadline)
                       for u, ref in pending.items()]
        got.update(zip(pending, answers))
        results: list = [MISSING] * len(calls)
        for unit, answer in got.items():
            if answer is not MISSING:
                for i, value in zip(by_unit[unit], answer):
                    results[i] = value
        return results

    def close(self) -> None:
        """Close this thread's direct connections (the actors stay up)."""
        if self.channels is not None:
            self.channels.close()

    def _names(self, unit: int) -> str:
        return ", ".join(self.layout.shard_names[s] for s in self.units[unit])

    def _collect(self, unit: int, first: int, method: str, calls: list[tuple[int, tuple]], ref,
                 deadline: float):
        names = ", ".join(self.layout.shard_names[s] for s, _ in calls)
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
                    log.warning("shard %s replica %d did not answer %s: %s", names, replica,
                                method, type(exc).__name__)
                    self._handles.pop((unit, replica), None)
            tried += 1
            replica = (replica + 1) % self.replicas
            if tried < self.replicas:
                ref = self._submit(unit, replica, method, calls)
        log.warning("shard %s missing: no %s answered %s", names, self.kind, method)
        return MISSING
