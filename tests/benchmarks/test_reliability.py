"""``nanhu bench reliability --tiny``: every class runs, and everything tried passes."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_reliability_bench_reports_counts_and_nothing_fails(run_cli, tmp_path):
    result = run_cli("bench", "reliability", "--tiny", "--out", tmp_path)
    assert result.code == 0, result.err
    raw = json.loads((tmp_path / "results.json").read_text())["reliability"]
    classes = {c["class"]: c for c in raw["classes"]}
    assert set(classes) == {"poisoned fingerprints", "mutated files", "hostile timestamps",
                            "stalled streams", "kill -9 during register", "job budgets",
                            "repair (kill -9 mid-repair)", "long self-match memory"}
    for name, counts in classes.items():
        assert counts["tried"] > 0 and counts["failed"] == 0, (name, counts["failures"])
    assert 0 < classes["long self-match memory"]["peak_mb"] <= 1536
    assert classes["mutated files"]["peak_mb"] >= classes["mutated files"]["largest_rise_mb"] >= 0
    text = (tmp_path / "report.md").read_text()
    assert "## Reliability" in text and "| class | tried | passed | failed |" in text
