"""The video benchmark's measures, from the screening records: recall per attack and length,
false matches, localisation, segment µAP and latency percentiles.

Definitions
-----------
- *hit*: the best (first) match names the clip's reference. For vPDQ, the best reference that
  passes vPDQ's rule.
- *localisation error* of a hit: the four absolute differences between the match's
  ``query_start_s, query_end_s, reference_start_s, reference_end_s`` and the truth (the query
  copies ``[0, query duration]`` of itself from ``[offset, offset + length * speed]`` of the
  reference); a hit is localised when all four are within 1 s.
- *µAP* (segment level, VSC22-style, pooled): every match Nanhu returns for every query,
  positives and negatives, is one prediction ``(query, reference, segment, score)``. A
  prediction is correct when it names the query's reference and its segment overlaps the true
  segment in query time and in reference time (positive overlap); a second correct prediction
  for the same query counts as a false one. Predictions are ranked by score, ties broken by
  the evidence's ``-log10_chance`` (summed over audio and video for fused matches); µAP is
  ``sum over correct predictions of precision at its rank / number of positive queries``,
  so clips that produce no correct prediction lower it. (VSC22's official metric credits
  overlap by area; here a correct overlapping prediction counts once.)
"""

from __future__ import annotations

import numpy as np


def _hit(predictions: list[dict] | None, reference_id: str) -> bool:
    return bool(predictions) and predictions[0]["reference_id"] == reference_id


def _errors(prediction: dict, truth: dict) -> list[float]:
    return [abs(prediction[k] - truth[k]) for k in
            ("query_start_s", "query_end_s", "reference_start_s", "reference_end_s")]


def _overlaps(prediction: dict, truth: dict) -> bool:
    return (min(prediction["query_end_s"], truth["query_end_s"])
            > max(prediction["query_start_s"], truth["query_start_s"])
            and min(prediction["reference_end_s"], truth["reference_end_s"])
            > max(prediction["reference_start_s"], truth["reference_start_s"]))


def micro_ap(positives: list[dict], negatives: list[dict], key: str) -> float:
    """Segment-level µAP over the pooled predictions ``record[key]`` (see module docstring)."""
    ranked = []  # (score, strength, correct)
    for record in positives:
        claimed = False
        for p in sorted(record[key], key=lambda p: (-p["score"], -p["strength"])):
            correct = (not claimed and p["reference_id"] == record["reference_id"]
                       and _overlaps(p, record["truth"]))
            claimed |= correct
            ranked.append((p["score"], p["strength"], correct))
    for record in negatives:
        ranked.extend((p["score"], p["strength"], False) for p in record[key])
    if not positives:
        return 0.0
    ranked.sort(key=lambda r: (-r[0], -r[1]))
    correct = np.array([r[2] for r in ranked], bool)
    if not correct.any():
        return 0.0
    precision = np.cumsum(correct) / np.arange(1, correct.size + 1)
    return float(precision[correct].sum() / len(positives))


def _localisation(records: list[dict], key: str) -> dict:
    errors = [_errors(r[key][0], r["truth"]) for r in records if _hit(r[key], r["reference_id"])]
    if not errors:
        return {"hits": 0}
    worst = np.array([max(e) for e in errors])
    e = np.array(errors)
    return {"hits": len(errors), "within_1s": float(np.mean(worst <= 1.0)),
            "median_worst_error_s": float(np.median(worst)),
            "median_query_start_error_s": float(np.median(e[:, 0])),
            "median_query_end_error_s": float(np.median(e[:, 1])),
            "median_reference_start_error_s": float(np.median(e[:, 2])),
            "median_reference_end_error_s": float(np.median(e[:, 3]))}


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def summarise(positives: list[dict], negatives: list[dict], attack_names: list[str]) -> dict:
    rows = []
    for name in attack_names:
        for length in [*sorted({r["length_s"] for r in positives}), None]:
            group = [r for r in positives if r["attack"] == name
                     and (length is None or r["length_s"] == length)]
            if not group:
                continue
            fused_hits = [r for r in group if _hit(r["fused"], r["reference_id"])]
            modality = {m: sum(1 for r in fused_hits if r["fused"][0]["modality"] == m)
                        for m in ("video", "audio", "audio+video")}
            rows.append({
                "attack": name, "length_s": length, "queries": len(group),
                "recall_video": _rate([_hit(r["video"], r["reference_id"]) for r in group]),
                "recall_fused": len(fused_hits) / len(group),
                "recall_pdq": (_rate([_hit(r["pdq"], r["reference_id"]) for r in group])
                               if group[0]["pdq"] is not None else None),
                "recall_pdq_5fps": (_rate([_hit(r["pdq_5fps"], r["reference_id"]) for r in group])
                                    if group[0]["pdq_5fps"] is not None else None),
                "fused_modality": modality,
                "wrong_top1_fused": sum(1 for r in group if r["fused"]
                                        and r["fused"][0]["reference_id"] != r["reference_id"]),
                "wrong_top1_video": sum(1 for r in group if r["video"]
                                        and r["video"][0]["reference_id"] != r["reference_id"]),
            })

    def false(key: str) -> dict:
        flagged = [r for r in negatives if r[key]]
        return {"queries": len(negatives), "queries_with_false_match": len(flagged),
                "false_matches": sum(len(r[key]) for r in flagged),
                "examples": [{"attack": r["attack"], "negative_id": r["negative_id"],
                              "length_s": r["length_s"], "top": r[key][0]} for r in flagged[:10]]}

    def pct(key: str, q: float) -> float | None:
        values = [r[key] for r in positives]
        return float(np.percentile(values, q)) if values else None

    return {
        "rows": rows,
        "false_matches": {"fused": false("fused"), "video": false("video"),
                          "pdq": false("pdq") if negatives and negatives[0]["pdq"] is not None
                          else None,
                          "pdq_5fps": false("pdq_5fps") if negatives
                          and negatives[0]["pdq_5fps"] is not None else None},
        "localisation": {"fused": _localisation(positives, "fused"),
                         "video": _localisation(positives, "video")},
        "micro_ap": {"fused": micro_ap(positives, negatives, "fused"),
                     "video": micro_ap(positives, negatives, "video")},
        "latency": {"match_ms_p50": pct("match_ms", 50), "match_ms_p99": pct("match_ms", 99),
                    "match_video_ms_p50": pct("match_video_ms", 50),
                    "match_video_ms_p99": pct("match_video_ms", 99),
                    "fingerprint_ms_p50": pct("fingerprint_ms", 50),
                    "pdq_ms_p50": pct("pdq_ms", 50)},
    }
