"""Match time with the peak check on and off: the same on-demand 5 s queries (a third excerpts
of registered works, two thirds never-registered music, six edits in turn), CPU per match,
the two matchers alternating which goes first.

    python time_verify.py CATALOG_DIR
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.benchmarks.audio_bench import ATTACK_RATE, _attack, query_fingerprint
from nanhu.benchmarks.corpus.audio import load_audio_corpus
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import load_audio

CONDITIONS = ["clean", "pink-snr5", "mp3-128k", "tempo-1.05", "pitch+1", "speech-over-0dB"]

catalog = Catalog(Path(sys.argv[1]))
params = AudioParams()
corpus = load_audio_corpus()
rng = np.random.default_rng(5)
speech = [load_audio(s["path"], sample_rate=ATTACK_RATE) for s in corpus["speech"][:20]]
queries = []
for pool, n in ((corpus["references"], 120), (corpus["negatives"], 240)):
    pool = [r for r in pool if r["duration_s"] >= 25]
    for i in range(n):
        entry = pool[int(rng.integers(len(pool)))]
        x = load_audio(entry["path"], sample_rate=ATTACK_RATE)
        start = int(rng.uniform(0, x.size / ATTACK_RATE - 7) * ATTACK_RATE)
        query, _ = _attack(CONDITIONS[i % len(CONDITIONS)], x[start:start + 5 * ATTACK_RATE],
                           rng, speech, corpus["negatives"])
        fp = query_fingerprint(attacks.to_wav_bytes(query, ATTACK_RATE), params)
        if fp is not None:
            queries.append(fp)
matchers = {"on": Matcher(catalog),
            "off": Matcher(catalog, audio_match=dataclasses.replace(AudioMatchParams(),
                                                                    verify=False))}
for m in matchers.values():
    m.match(queries[0])
times: dict[str, list[float]] = {"on": [], "off": []}
for number, fp in enumerate(queries):
    for name in (("on", "off") if number % 2 else ("off", "on")):
        started = time.thread_time()
        matchers[name].match(fp)
        times[name].append((time.thread_time() - started) * 1000)
out: dict = {name: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
                    "mean": float(np.mean(v))} for name, v in times.items()}
out["queries"] = len(queries)
out["hours"] = catalog.total_audio_frames / params.frames_per_second / 3600
print(json.dumps(out))
