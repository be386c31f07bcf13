"""Positives found of tried, per attack, at each scale catalog given (the lost-positives
breakdown of benchmarks/scale_video_study.py): .venv/bin/python attack_misses.py CATALOG ...
"""

import json
import sys
from pathlib import Path

from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.benchmarks.scale_video_study import miss_breakdown

cache = cache_dir()
data = real_video_set(cache / "bench", cache, positives=80, negatives=80, seed=0)
for d in sys.argv[1:]:
    print(Path(d).name, json.dumps(miss_breakdown(Path(d), data)["by_attack"]), flush=True)
