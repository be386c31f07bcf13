"""A generated-audio catalog to profile the fan-out on while the real corpus is not there:
``REFS`` music-like works of 60 s, and 5 s queries (30 excerpts with noise, 20 never registered),
written under /tmp/fo/synth (catalog/ and queries.npz-like fingerprints, queries/*.fp).

    .venv/bin/python synth_catalog.py REFS
"""

import sys
from pathlib import Path

import numpy as np

from nanhu.benchmarks.synth import music_like, write_audio
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media

RATE = 22050
root = Path("/tmp/fo/synth")
n_refs = int(sys.argv[1])
media = root / "media"
media.mkdir(parents=True, exist_ok=True)
(root / "queries").mkdir(exist_ok=True)
rng = np.random.default_rng(3)
catalog_dir = root / "catalog"
if not (catalog_dir / "manifest.json").exists():
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for i in range(n_refs):
            samples = music_like(60.0, seed=1000 + i, sample_rate=RATE)
            path = write_audio(media / f"ref-{i}.flac", samples, RATE)
            catalog.add(f"work-{i}", fingerprint_media(path, video=False), title=f"work-{i}",
                        owner="label")
            path.unlink()
        catalog.commit()
for q in range(50):
    if q < 30:
        samples = music_like(60.0, seed=1000 + q * (n_refs // 30), sample_rate=RATE)
        start = int(rng.uniform(0, 50) * RATE)
        clip = samples[start:start + 5 * RATE]
        clip = clip + 0.3 * float(np.std(clip)) * rng.standard_normal(clip.size)
    else:
        clip = music_like(5.0, seed=90_000 + q, sample_rate=RATE)
    path = write_audio(media / f"q-{q}.mp3", clip.astype(np.float32), RATE)
    fp = fingerprint_media(path, query=True, video=False)
    (root / "queries" / f"q-{q:02d}.fp").write_bytes(fp.to_bytes())
print("ok")
