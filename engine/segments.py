"""Aligned segments: what every modality's alignment produces and what fusion consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


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
