"""How alike are the scale run's synthetic keyframes to real queries, against how alike
unrelated real keyframes are (the score's measured ``pair_chance`` table)? Share of (query
vector, synthetic keyframe) pairs at or above each cosine, for the scale run's positive query
vectors against 200,000 synthetic keyframes of the fitted model, and the same for the real
references' keyframes of *other* videos than the query's own.

    .venv/bin/python docs/results/video-scale-2026-12-06/synthetic_tail.py
"""

import numpy as np

from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.benchmarks.scale_video_synth import KeyframeModel
from nanhu.engine.video.score import VideoMatchParams

cache = cache_dir()
data = real_video_set(cache / "bench", cache, positives=80, negatives=80, seed=0)
model = KeyframeModel.fit([r[1] for r in data["refs"]])
synthetic = model.sample(200_000, np.random.default_rng(123))
queries = np.concatenate([p[3] for p in data["positives"]])
owner = np.concatenate([[p[0]] * len(p[3]) for p in data["positives"]])
refs = np.concatenate([r[1] for r in data["refs"]])
ref_of = np.concatenate([[i] * len(r[1]) for i, r in enumerate(data["refs"])])
levels = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
syn = queries @ synthetic.T
real = queries @ refs.T
other = owner[:, None] != ref_of[None, :]
table = dict(VideoMatchParams().pair_chance)
print("cosine  synthetic  real-other-videos  score-table")
for s in levels:
    print(f"{s:5.2f}  {np.mean(syn >= s):.2e}  {np.mean(real[other] >= s):.2e}  "
          f"{table.get(s, float('nan')):.1e}")
