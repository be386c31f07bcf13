"""Aligned segments: what every modality's alignment produces and what fusion consumes.

One score scale for every modality. Each alignment computes ``E``, the expected number of
matches at least this strong that chance alone would give one query of this length against a
catalog of this size, and reports ``score = 1 - E ** (1 / SCORE_SCALE)`` (0 when E >= 1): score
0.5 is E = 1e-3 (one such false match in a thousand queries), 0.9 is E = 1e-10. A fused
audio+video match of independent evidence has ``E = E_audio * E_video``, which is the same
``1 - (1 - a) * (1 - v)`` on scores.

Confidence bands put the scale in three words for moderators (:func:`band`), by E: ``high``
when E <= 1e-10 (score >= 0.9: one such chance match in ten billion queries), ``medium`` when
E <= 1e-5 (score >= 0.684), ``low`` otherwise (at the default threshold, score 0.5, E is 1e-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: -log10 E that maps to score 0.9 (score = 1 - 10 ** (log10 E / SCORE_SCALE))
SCORE_SCALE = 10.0
#: (band, largest log10 E in it), surest first; past the last edge the band is "low"
BAND_EDGES = (("high", -10.0), ("medium", -5.0))


def score_from_log10_expected(log10_expected: float) -> float:
    """Score in 0..1 of a segment whose expected chance matches are ``10 ** log10_expected``."""
    return float(1.0 - 10.0 ** (min(0.0, log10_expected) / SCORE_SCALE))


def expected_false_matches(score: float) -> float:
    """E of a score (the inverse of :func:`score_from_log10_expected`, 1.0 for score 0)."""
    return float(max(0.0, 1.0 - score) ** SCORE_SCALE) if score < 1.0 else 0.0


def log10_expected(score: float) -> float:
    """log10 E of a score, finite even for scores that round to 1."""
    return SCORE_SCALE * math.log10(max(1.0 - score, 1e-300))


def band(score: float) -> str:
    """``high``, ``medium`` or ``low``: the confidence band of a score (see the module docstring)."""
    log10_e = log10_expected(score)
    for name, edge in BAND_EDGES:
        if log10_e <= edge + 1e-9:
            return name
    return "low"


@dataclass
class Segment:
    """A stretch of the query that copies a stretch of one reference.

    Times are seconds from the start of each file. ``speed`` is how many times faster the query
    plays than the reference (``query duration * speed == reference duration`` of the stretch).
    ``score`` is in 0..1, higher is surer; ``evidence`` holds the counts behind it.
    """

    reference: int  # catalog ordinal of the reference
    modality: str  # "audio", "video" or "audio+video"
    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    speed: float
    score: float
    evidence: dict = field(default_factory=dict)

    @property
    def query_duration_s(self) -> float:
        return self.query_end_s - self.query_start_s

    def query_overlap_s(self, other: Segment) -> float:
        return max(
            0.0,
            min(self.query_end_s, other.query_end_s) - max(self.query_start_s, other.query_start_s),
        )


def covered_s(segments: list[Segment]) -> float:
    """Seconds of query time the segments cover (their union)."""
    spans = sorted((s.query_start_s, s.query_end_s) for s in segments)
    total, end = 0.0, -math.inf
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total
