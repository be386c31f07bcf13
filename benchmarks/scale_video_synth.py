"""Synthetic keyframe vectors with the real vectors' statistics, for the video scale run.

Real keyframe embeddings are far from uniform on the sphere: they share a mean direction (the
descriptor's histogram part is non-negative) and most of their energy lies in a few dozen
principal directions, and consecutive keyframes of a shot are near-copies. Random unit
vectors (what the 1M-keyframe run used) are the easy case for a quantiser and for a graph;
these are not. :class:`KeyframeModel` fits the mean and covariance of real vectors and the
similarity of consecutive keyframes, and draws references of shots from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: synthetic references are this many keyframes long (10 minutes at 2 keyframes/s)
REFERENCE_KEYFRAMES = 1200
#: mean shot length in keyframes (geometric)
MEAN_SHOT = 8.0


@dataclass
class KeyframeModel:
    """mean float32[d]; basis float32[d, d] (principal directions, columns); scales float32[d]
    (standard deviations along them); within_shot: share of a keyframe's variance that is
    fresh per keyframe (the rest is the shot's)."""

    mean: np.ndarray
    basis: np.ndarray
    scales: np.ndarray
    within_shot: float

    @classmethod
    def fit(cls, vectors: list[np.ndarray]) -> KeyframeModel:
        """Fit to real references' keyframes (one float32[n_i, d] array per reference)."""
        stacked = np.concatenate(vectors).astype(np.float64)
        mean = stacked.mean(0)
        cov = np.cov((stacked - mean).T)
        eigvals, eigvecs = np.linalg.eigh(cov)
        scales = np.sqrt(np.clip(eigvals, 0, None))
        # consecutive keyframes' centred similarity: 1 - within_shot on average (shot cuts
        # included, as they are in the synthetic references too)
        centred = [(v - mean) for v in vectors if len(v) > 1]
        sims = np.concatenate([
            np.sum(c[1:] * c[:-1], 1) / (np.linalg.norm(c[1:], axis=1)
                                         * np.linalg.norm(c[:-1], axis=1) + 1e-12)
            for c in centred])
        shot_share = float(np.clip(np.median(sims), 0.0, 0.98))
        return cls(mean.astype(np.float32), eigvecs.astype(np.float32),
                   scales.astype(np.float32), 1.0 - shot_share)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """float32[n, d] unit vectors: consecutive references of shots."""
        d = self.mean.size
        lengths = rng.geometric(1.0 / MEAN_SHOT, size=n // 2 + 16)
        shot_of = np.repeat(np.arange(lengths.size), lengths)[:n]
        if shot_of.size < n:  # extremely unlikely: pad with one more shot
            shot_of = np.concatenate([shot_of, np.full(n - shot_of.size, lengths.size)])
        bases = rng.standard_normal((int(shot_of[-1]) + 1, d), dtype=np.float32)
        fresh = rng.standard_normal((n, d), dtype=np.float32)
        z = (np.sqrt(1 - self.within_shot) * bases[shot_of]
             + np.sqrt(self.within_shot) * fresh) * self.scales
        out = self.mean + z @ self.basis.T
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.astype(np.float32)

    def blocks(self, n: int, seed: int, *, block: int = 200_000):
        """(start, float32[m, d]) blocks of ``n`` synthetic keyframes, deterministic per seed
        and block (so a run can regenerate any part without holding all)."""
        for start in range(0, n, block):
            rng = np.random.default_rng([seed, 4242, start])
            yield start, self.sample(min(block, n - start), rng)


def synthetic_ids(start: int, count: int, *, first_ordinal: int) -> tuple[np.ndarray, np.ndarray]:
    """(ordinals uint32[count], times_s float32[count]) of synthetic keyframes ``start..``:
    references of :data:`REFERENCE_KEYFRAMES` keyframes, 0.5 s apart."""
    rows = np.arange(start, start + count, dtype=np.int64)
    return ((first_ordinal + rows // REFERENCE_KEYFRAMES).astype(np.uint32),
            ((rows % REFERENCE_KEYFRAMES) * 0.5).astype(np.float32))
