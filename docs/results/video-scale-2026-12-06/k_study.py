import dataclasses, json, sys, time
import numpy as np, faiss
from pathlib import Path
from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.benchmarks.scale_video import _queries, _match_all
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.engine.video import align as video_align
faiss.omp_set_num_threads(1)
cache = cache_dir(); bench = cache / "bench"
data = real_video_set(bench, cache, positives=80, negatives=80, seed=0)
pos, neg = _queries(data)
d = Path(sys.argv[1])
cat = Catalog(d); cat.vectors()
out = {}
for k in [int(a) for a in sys.argv[2:]]:
    m = Matcher(cat, video_match=dataclasses.replace(video_align.default_params(), k=k))
    m.match(pos[0][1])
    got = _match_all(m, pos, neg)
    out[k] = {"top1": got["top1"], "false": got["false"], "p50": float(np.percentile(got["wall"], 50)), "p99": float(np.percentile(got["wall"], 99))}
    print(k, out[k], flush=True)
