"""The peak check's calibration run: its recall table and its fit of the null's tail."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nanhu.benchmarks.runs.audio_verify_null import fit_sizes, null_tail, summarise
from nanhu.engine.audio.align import AudioMatchParams


def check(raw: float, true: bool, hits: int = 30) -> dict:
    return {"ordinal": 1, "raw": raw, "hits": hits, "query_peaks": 80, "expected": 1.0,
            "shifted": 0.5, "votes": 3, "true": true}


def test_the_table_counts_votes_checks_and_flagged_negatives_apart():
    rows = [
        {"condition": "pitch+1", "seconds": 5.0, "negative": False, "source": "a",
         "votes_found": False, "votes_false": False, "checks": [check(-30.0, True)]},
        {"condition": "pitch+1", "seconds": 5.0, "negative": False, "source": "b",
         "votes_found": False, "votes_false": False,
         "checks": [check(-30.0, True, hits=5), check(-25.0, False)]},
        {"condition": "pitch+1", "seconds": 5.0, "negative": False, "source": "c",
         "votes_found": True, "votes_false": False, "checks": []},
        {"condition": "clean", "seconds": 5.0, "negative": True, "source": "n1",
         "votes_found": False, "votes_false": False, "checks": [check(-3.0, False)]},
        {"condition": "clean", "seconds": 5.0, "negative": True, "source": "quoting",
         "votes_found": False, "votes_false": True, "checks": [check(-40.0, False)]},
    ]
    match = dataclasses.replace(AudioMatchParams(), verify_slope=1.0, verify_offset=0.0)
    table = summarise(rows, match, flagged={"quoting"})["at_default"]
    # the second's true check has too few hits; its false one passes
    assert table["pitch+1 5s"] == {"queries": 3, "votes": 1, "votes_and_check": 2,
                                   "false_checked": 1}
    assert table["neg clean 5s"] == {"queries": 1, "false_votes": 0, "false_checked": 0}
    assert table["neg clean (flagged) 5s"] == {"queries": 1, "false_votes": 1,
                                               "false_checked": 1}


def test_the_fit_recovers_a_known_tail_and_its_change_with_size(tmp_path):
    """Negatives whose best raw figure has share 10^(a + b log10(h/18.5) + c raw) of being at
    least that strong: the fit gives back a, b and c."""
    a, b, c = -0.6, -0.2, 0.17
    paths = []
    for hours in (18.5, 1850.0):
        n = 4000
        share = np.arange(1, n + 1) / n
        raw = (np.log10(share) - a - b * np.log10(hours / 18.5)) / c
        rows = [{"negative": True, "source": f"s{i}", "checks": [check(float(r), False)]}
                for i, r in enumerate(raw)]
        path = tmp_path / f"{hours}.json"
        path.write_text(json.dumps({"summary": {"catalog_hours": hours, "flagged": []},
                                    "rows": rows}))
        paths.append(path)
        got_raw, got_share = null_tail(rows, set(), 12)
        np.testing.assert_allclose(got_raw, np.sort(np.minimum(raw, 0.0)))  # none: 0
        np.testing.assert_allclose(got_share, share)
    fit = fit_sizes(paths)
    assert fit["verify_offset"] == pytest.approx(a, abs=0.01)
    assert fit["verify_per_decade"] == pytest.approx(b, abs=0.01)
    assert fit["verify_slope"] == pytest.approx(c, abs=0.005)
