"""The null at catalog scale: never-registered queries with the thresholds off, the score's
calibration fitted on them, and the decision rule (``min_votes`` and the score limit) chosen
from them together with the positives (``docs/audio.md``, "Calibration").

A *record* is what one query's relaxed screening found: ``[[votes, log10_poisson,
is_true], ...]``, one row per aligned segment (``is_true``: the segment is the query's own
reference; always 0 for never-registered queries). A rule ``(min_votes, log10 E limit)``
passes a segment with at least ``min_votes`` votes whose calibrated figure is at most the
limit; a null query is a false match under a rule when any of its segments passes, a positive
is found when its own reference's segment passes and no other segment passes with more votes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher

#: the relaxed thresholds records are taken at (everything a rule could want to see)
RELAXED_VOTES = 3


def null_records(directory: Path, queries: list, *, truth: list[str] | None = None,
                 match: AudioMatchParams | None = None) -> list[list[list[float]]]:
    """Relaxed screening of ``queries`` (fingerprints) against the catalog at ``directory``.

    truth : the reference id each query copies (positives), or None (never-registered).
    Returns one record per query (see the module docstring).
    """
    relaxed = replace(match or AudioMatchParams(), min_votes=RELAXED_VOTES, min_score=0.0)
    out = []
    with Catalog(directory) as catalog:
        matcher = Matcher(catalog, audio_match=relaxed)
        for n, fp in enumerate(queries):
            # the votes' null: segments of the peak check (queries keyed on demand) have a
            # null and a calibration of their own (benchmarks/runs/audio_verify_null.py)
            segments = [s for s in matcher.segments(fp) if "verified" not in s.evidence]
            refs = catalog.by_ordinals(np.array([s.reference for s in segments], np.int64))
            own = truth[n] if truth is not None else None
            out.append([[float(s.evidence["aligned_hashes"]),
                         float(s.evidence.get("log10_chance_poisson", s.evidence["log10_chance"])),
                         float(own is not None and refs.get(s.reference) is not None
                               and refs[s.reference].ref_id == own)]
                        for s in segments])
    return out


def best_poisson(records: list[list[list[float]]]) -> list[float]:
    """Each query's smallest Poisson figure (+inf when nothing aligned)."""
    return [min((row[1] for row in rec), default=float("inf")) for rec in records]


def observed_curve(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of null queries whose best figure is at most each grid value."""
    values = np.sort(np.asarray(values, float))
    return np.searchsorted(values, grid, side="right") / max(values.size, 1)


def fit_calibration(nulls: dict[str, list[float]], sources: list[str], flagged: set[str],
                    *, min_count: int = 20) -> dict:
    """Least-squares fit of ``log10 P_observed = offset + per_decade * log10(hours / 18.5)
    + slope * log10 E_poisson`` over every size's null curve (points with at least
    ``min_count`` queries below them), on the queries of unflagged tracks."""
    rows, targets = [], []
    grid = np.linspace(-14, -1, 53)
    for hours, values in nulls.items():
        v = np.asarray(values, float)
        keep = ~np.isin(np.asarray(sources[: v.size]), list(flagged))
        curve = observed_curve(v[keep], grid)
        ok = curve * keep.sum() >= min_count
        for x, p in zip(grid[ok], curve[ok]):
            rows.append((1.0, np.log10(float(hours) / 18.5), x))
            targets.append(np.log10(p))
    (offset, per_decade, slope), *_ = np.linalg.lstsq(np.array(rows), np.array(targets),
                                                      rcond=None)
    return {"offset": float(offset), "per_decade": float(per_decade), "slope": float(slope),
            "points": len(rows)}


def _passes(record: list[list[float]], hours: float, min_votes: int, limit: float,
            calibrate: Callable[[float, float], float]) -> list[list[float]]:
    return [row for row in record
            if row[0] >= min_votes and calibrate(row[1], hours) <= limit]


def rule_table(nulls: dict[str, list], positives: dict[str, list], *, sources: list[str],
               flagged: set[str], calibrate: Callable[[float, float], float],
               votes: tuple[int, ...] = (5, 6, 7, 8, 9, 10),
               limits: tuple[float, ...] = (-3.0, -4.0, -5.0, -6.0)) -> list[dict]:
    """For each rule: null queries matched (all and unflagged) and positives found, per size.

    nulls, positives : catalog hours (as a string) -> records (:func:`null_records`).
    """
    table = []
    for v in votes:
        for limit in limits:
            row = {"min_votes": v, "log10_e_limit": limit, "sizes": {}}
            for hours, records in nulls.items():
                h = float(hours)
                false = [bool(_passes(rec, h, v, limit, calibrate)) for rec in records]
                unflagged = [f for f, src in zip(false, sources) if src not in flagged]
                found = 0
                for rec in positives.get(hours, []):
                    passing = _passes(rec, h, v, limit, calibrate)
                    if passing and max(passing, key=lambda r: r[0])[2]:
                        found += 1
                row["sizes"][hours] = {
                    "null_matched": int(sum(false)), "null_queries": len(false),
                    "null_matched_unflagged": int(sum(unflagged)),
                    "null_queries_unflagged": len(unflagged),
                    "positives_found": found, "positives": len(positives.get(hours, [])),
                }
            table.append(row)
    return table
