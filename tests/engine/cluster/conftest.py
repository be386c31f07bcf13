"""A small cluster and the same catalog unsplit: songs (audio only) and films (audio + video)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like, write_audio, write_film
from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.layout import ClusterLayout, init_cluster
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media

RATE = 22050


@dataclass
class Corpus:
    references: dict[str, Fingerprint]
    queries: dict[str, Fingerprint]
    single: Path


def _cut(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return samples[int(start_s * RATE):int(end_s * RATE)]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, reference_fps, songs) -> Corpus:
    media = tmp_path_factory.mktemp("cluster-media")
    refs: dict[str, Fingerprint] = dict(reference_fps)
    extra = {f"tune-{i}": music_like(30.0, seed=300 + i, sample_rate=RATE) for i in range(6)}
    for ref_id, samples in extra.items():
        refs[ref_id] = fingerprint_media(write_audio(media / f"{ref_id}.flac", samples, RATE),
                                         video=False)
    films = {f"film-{i}": write_film(media / f"film-{i}.mp4", 24.0, seed=40 + i, scale=1)
             for i in range(3)}
    for ref_id, path in films.items():
        refs[ref_id] = fingerprint_media(path)
    queries: dict[str, Fingerprint] = {}
    rng = np.random.default_rng(7)
    every = {**songs, **extra}
    for ref_id, samples in every.items():
        clip = _cut(samples, 8.0, 16.0)
        noisy = clip + 0.3 * float(np.std(clip)) * rng.standard_normal(clip.size)
        for name, signal in (("clean", clip), ("noisy", noisy)):
            path = write_audio(media / f"q-{ref_id}-{name}.mp3", signal.astype(np.float32), RATE)
            queries[f"{ref_id}/{name}"] = fingerprint_media(path, query=True, video=False)
    for i in range(4):  # never registered
        path = write_audio(media / f"neg-{i}.mp3", music_like(8.0, seed=900 + i,
                                                               sample_rate=RATE), RATE)
        queries[f"negative-{i}"] = fingerprint_media(path, query=True, video=False)
    for ref_id, path in films.items():
        whole = fingerprint_media(path, query=True)
        queries[f"{ref_id}/fused"] = whole
        queries[f"{ref_id}/video-only"] = dataclasses.replace(whole, audio=None, audio_peaks=None)
    single = tmp_path_factory.mktemp("cluster-single") / "catalog"
    with Catalog(single, writable=True, create=True) as catalog:
        for ref_id, fp in refs.items():
            catalog.add(ref_id, fp, title=ref_id, owner="label")
        catalog.commit()
    return Corpus(refs, queries, single)


def build_cluster(root: Path, corpus: Corpus, n_shards: int) -> ClusterLayout:
    """The corpus' references registered into a new cluster, each on its placement shard."""
    layout = init_cluster(root, n_shards)
    per_shard: dict[int, list[str]] = {}
    for ref_id in corpus.references:
        per_shard.setdefault(layout.shard_for(ref_id), []).append(ref_id)
    for shard, ids in per_shard.items():
        with Catalog(layout.shard_dir(shard), writable=True) as catalog:
            for ref_id in ids:
                catalog.add(ref_id, corpus.references[ref_id], title=ref_id, owner="label")
            catalog.commit()
    return layout
