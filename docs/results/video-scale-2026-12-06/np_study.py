import json, sys
import numpy as np, faiss
from pathlib import Path
from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.benchmarks.scale_video import _queries, _match_all
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.engine.store.vectors_compact_search import CompactPart
faiss.omp_set_num_threads(1)
cache = cache_dir(); bench = cache / "bench"
data = real_video_set(bench, cache, positives=80, negatives=80, seed=0)
pos, neg = _queries(data)
cat = Catalog(Path(sys.argv[1])); idx = cat.vectors()
part = [p.index for p in idx.parts if isinstance(p.index, CompactPart)][0]
m = Matcher(cat)
for spec in sys.argv[2:]:
    part.nprobe, part.shortlist = (int(v) for v in spec.split(","))
    m.match(pos[0][1])
    got = _match_all(m, pos, neg)
    print(spec, {"top1": got["top1"], "false": got["false"], "p50": float(np.percentile(got["wall"], 50)), "p99": float(np.percentile(got["wall"], 99))}, flush=True)
