"""The video benchmark's measures, on made-up screening records (no media needed)."""

import pytest

from nanhu.benchmarks.runs.video_measures import micro_ap


def test_micro_ap_ranks_pooled_predictions():
    truth = {"query_start_s": 0.0, "query_end_s": 10.0, "reference_start_s": 5.0,
             "reference_end_s": 15.0}

    def prediction(ref: str, score: float, start: float = 5.0) -> dict:
        return {"reference_id": ref, "score": score, "strength": 0.0, "query_start_s": 0.0,
                "query_end_s": 10.0, "reference_start_s": start, "reference_end_s": start + 10}

    positives = [{"reference_id": "a", "truth": truth, "fused": [prediction("a", 0.9)]},
                 {"reference_id": "b", "truth": truth, "fused": [prediction("b", 0.5)]}]
    negatives = [{"fused": [prediction("x", 0.7)]}]
    # Ranking: a (correct, P=1), x (false), b (correct, P=2/3).
    assert micro_ap(positives, negatives, "fused") == pytest.approx((1 + 2 / 3) / 2)
    positives[1]["fused"] = [prediction("b", 0.5, start=30.0)]  # right work, wrong place
    assert micro_ap(positives, negatives, "fused") == pytest.approx(0.5)
    positives[1]["fused"] = [prediction("b", 0.95), prediction("b", 0.94)]  # a duplicate
    assert micro_ap(positives, [], "fused") == pytest.approx((1 + 2 / 3) / 2)
