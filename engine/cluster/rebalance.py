"""Moving references to the shards the placement rule names: ``nanhu cluster rebalance``.

After shards are added (:func:`~nanhu.engine.cluster.layout.add_shards`) some references sit on a
shard that is no longer theirs (with jump hashing, about ``new / total`` of them, each moving
only onto a new shard). :func:`rebalance` moves them in batches; each batch is

1. exported from its old shard (:meth:`ShardWrites.export`: the stored keys, frames and
   keyframes, no media needed),
2. registered on its new shard, one commit per target shard (title, owner, metadata and
   policy kept),
3. deleted from the old shard, one commit.

A crash or ``kill -9`` anywhere leaves every reference on its old shard, its new one, or both
(between steps 2 and 3). Running the command again finishes the job: a reference already on
its new shard is not added twice, only deleted from the old one. While a reference is on both,
a screening may name it twice for that instant; reads find it on either. When no reference is
left to move, the layout's ``rebalance`` mark is cleared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nanhu.engine.cluster.layout import ClusterLayout
from nanhu.engine.cluster.view import MISSING, ShardedCatalog
from nanhu.engine.errors import ShardUnavailable

log = logging.getLogger(__name__)


@dataclass
class RebalanceReport:
    moved: int = 0
    already_there: int = 0
    checked: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"moved": self.moved, "already_there": self.already_there,
                "checked": self.checked, "seconds": round(self.seconds, 3)}


def misplaced(view: ShardedCatalog, layout: ClusterLayout) -> dict[int, list[str]]:
    """{shard: ids of the references on it that belong elsewhere}."""
    out: dict[int, list[str]] = {}
    for shard in range(layout.n_shards):
        after = None
        while True:
            answer = view.fanout.call_each("list", [(shard, (None, 1000, after))])[0]
            if answer is MISSING:
                raise ShardUnavailable(f"shard {layout.shard_names[shard]} did not answer")
            if not answer:
                break
            out.setdefault(shard, []).extend(
                r.ref_id for r in answer if layout.shard_for(r.ref_id) != shard)
            after = answer[-1].ref_id
    return {s: ids for s, ids in out.items() if ids}


def rebalance(layout: ClusterLayout, view: ShardedCatalog, writes, *, batch: int = 50,
              progress: Callable[[RebalanceReport, int], None] | None = None,
              stop_after: int | None = None) -> RebalanceReport:
    """Move every misplaced reference to its shard (module docstring). ``stop_after``: stop
    (as an interruption would) once that many references have moved, for tests and for
    spreading a long rebalance over maintenance windows."""
    started = time.monotonic()
    report = RebalanceReport()
    view.refresh(now=True)  # misplaced() asks the shards directly: their state first
    todo = misplaced(view, layout)
    total = sum(len(ids) for ids in todo.values())
    log.info("rebalance: %d references to move across %d shards", total, layout.n_shards)
    for source, ids in todo.items():
        for lo in range(0, len(ids), batch):
            chunk = ids[lo:lo + batch]
            (exported,) = writes.call_each("export", [(source, (chunk,))])
            (refs,) = view.fanout.call_each("list_ids", [(source, (chunk,))])
            if exported is MISSING or refs is MISSING:
                raise ShardUnavailable(f"shard {layout.shard_names[source]} did not answer")
            targets: dict[int, list[dict]] = {}
            for ref_id in chunk:
                if ref_id not in exported:
                    continue  # deleted meanwhile
                target = layout.shard_for(ref_id)
                (there,) = view.fanout.call_each("get", [(target, (ref_id,))])
                report.checked += 1
                if there is not None and there is not MISSING:
                    report.already_there += 1
                    continue
                ref = refs[ref_id]
                targets.setdefault(target, []).append({
                    "op": "add", "ref_id": ref_id, "fingerprint": exported[ref_id],
                    "title": ref.title, "owner": ref.owner, "metadata": ref.metadata,
                    "policy": ref.policy, "overlaps": False})
            for target, ops in targets.items():
                (done,) = writes.call_each("apply", [(target, (ops,))])
                if done is MISSING:
                    raise ShardUnavailable(f"shard {layout.shard_names[target]} has no writer")
                report.moved += len(ops)
            gone = [r for r in chunk if r in exported]
            if gone:
                (done,) = writes.call_each("apply", [(source, (
                    [{"op": "delete", "ref_id": r} for r in gone],))])
                if done is MISSING:
                    raise ShardUnavailable(f"shard {layout.shard_names[source]} has no writer")
            if progress:
                progress(report, total)
            log.info("rebalance: %d/%d moved", report.moved + report.already_there, total)
            if stop_after is not None and report.moved >= stop_after:
                report.seconds = time.monotonic() - started
                return report
    view.refresh(now=True)  # misplaced() asks the shards directly: their state first
    if not misplaced(view, layout):
        layout.rebalance = None
        layout.write()
    report.seconds = time.monotonic() - started
    return report
