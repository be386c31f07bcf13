"""The table of README.md from the probe's jsonl: per version and shard count, over every pass
of every run, the mean (and range) of the in-process and Ray p50, the Ray p99, the overhead p50
(Ray p50 minus in-process p50, same process and pass) and the CPU overhead per query.

    python summary.py ab-real.jsonl [...]
"""

import json
import sys
from collections import defaultdict

rows = defaultdict(list)
for path in sys.argv[1:]:
    for line in open(path):
        d = json.loads(line)
        rows[(d["shards"], d["label"])].append(d)


def fmt(values: list[float]) -> str:
    return f"{sum(values) / len(values):.1f} ({min(values):.1f}-{max(values):.1f})"


print("| shards | version | trips / query | runs | in process p50 | Ray p50 | Ray p99 | "
      "overhead p50 | CPU overhead | load | answers differ |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for (shards, label), runs in sorted(rows.items()):
    passes = [(r[f"local{i}"], r[f"ray{i}"]) for r in runs for i in range(2)]
    local = [lo[0] for lo, _ in passes]
    ray = [ra[0] for _, ra in passes]
    p99 = [ra[1] for _, ra in passes]
    over = [ra[0] - lo[0] for lo, ra in passes]
    cpu = [ra[2] - lo[2] for lo, ra in passes]
    loads = [r["load"] for r in runs] + [r["load_end"] for r in runs]
    print(f"| {shards} | {label} | {runs[0]['round_trips_per_query']} | {len(runs)} | "
          f"{sum(local) / len(local):.1f} | {sum(ray) / len(ray):.1f} | "
          f"{sum(p99) / len(p99):.0f} | **{fmt(over)}** | **{fmt(cpu)}** | "
          f"{min(loads):.1f}-{max(loads):.1f} | {sum(r['differ'] for r in runs)} |")
