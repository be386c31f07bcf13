"""What one sharded query sends and gets back, per fan-out call, in process: for each shard
method, calls a query, and the pickled bytes (protocol 5, what Ray's serialiser writes for
numpy buffers and Python objects) of the arguments and of each shard's answer, and of a trip's
one task when one actor holds every shard (one node).

    .venv/bin/python sizes.py SOURCE_CATALOG QUERIES SHARDS LABEL

SOURCE_CATALOG is a catalog directory; QUERIES a directory of *.fp, or "bench" for the real
benchmark's quick queries (60 positives, 40 negatives).
"""

import collections
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from nanhu.benchmarks.cluster_bench import CACHE, read_queries, split_catalog
from nanhu.engine.cluster.view import LocalFanout, ShardedCatalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher

#: the bench's cached quick query set (200 positives, then the negatives)
QUERY_SET = "scale-queries-audio-v3-f6-p0.15-1cc93e6a58-0-200-*.npz"

source, query_dir, n, label = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]


def load_queries(where: str) -> list:
    if where == "bench":
        return [fp for _, fp in read_queries(
            min(CACHE.glob(QUERY_SET)), 60, 40, 200)]
    return [Fingerprint.from_bytes(p.read_bytes()).keyed() for p in sorted(Path(where).glob("*.fp"))]


queries = load_queries(query_dir)
splits = Path(os.environ.get("NANHU_SPLITS", source.parent))  # where the shard copies go
layout = split_catalog(source, splits / f"cluster-{n}-{source.name}", n)
sent: dict[str, list[int]] = collections.defaultdict(list)
back: dict[str, list[int]] = collections.defaultdict(list)
task_sent: dict[str, list[int]] = collections.defaultdict(list)
task_back: dict[str, list[int]] = collections.defaultdict(list)


class Sizing(LocalFanout):
    def call_each(self, method, calls):
        out = super().call_each(method, calls)
        for (_, args), answer in zip(calls, out):
            sent[method].append(len(pickle.dumps(args, protocol=5)))
            back[method].append(len(pickle.dumps(answer, protocol=5)))
        # one actor holding every shard (one node): the trip's one task and its one reply
        task_sent[method].append(len(pickle.dumps(list(calls), protocol=5)))
        task_back[method].append(len(pickle.dumps(out, protocol=5)))
        return out


view = ShardedCatalog(Sizing([str(layout.shard_dir(s)) for s in range(n)]))
matcher = Matcher(view)
for fp in queries:  # warm: caches filled
    view.refresh()
    matcher.match(fp)
for kept in (sent, back, task_sent, task_back):
    kept.clear()
for fp in queries:
    view.refresh()
    matcher.match(fp)
out: dict = {"label": label, "shards": n, "queries": len(queries)}
for method in sent:
    s, b = np.array(sent[method]), np.array(back[method])
    out[method] = {"calls_per_query_per_shard": round(len(s) / len(queries) / n, 2),
                   "sent_p50": int(np.median(s)), "sent_max": int(s.max()),
                   "back_p50": int(np.median(b)), "back_p90": int(np.percentile(b, 90)),
                   "back_max": int(b.max()), "back_over_100k": int((b > 100 * 1024).sum()),
                   "one_task_sent_p50_max": [int(np.median(task_sent[method])),
                                             int(max(task_sent[method]))],
                   "one_task_back_p50_p90_max": [int(np.median(task_back[method])),
                                                 int(np.percentile(task_back[method], 90)),
                                                 int(max(task_back[method]))]}
print(json.dumps(out))
