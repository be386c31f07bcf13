"""Per run: negatives unflagged / flagged, the strongest unflagged null check, the checks that
pass the checked-in default (AudioMatchParams(): calibrated E <= the min_score limit and at
least verify_min_hits hits), false matches by the votes alone, and recall per condition.

    python null_figures.py 18h/verify-null.json.gz 1018h/verify-null.json.gz ...

Prints one JSON object a run."""
import gzip
import json
import sys
from collections import defaultdict

from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.segments import log10_expected


def strongest(cs: list, match: AudioMatchParams, hours: float) -> dict | None:
    """The strongest of (check, row) pairs, by raw figure."""
    if not cs:
        return None
    c, r = min(cs, key=lambda pair: pair[0]["raw"])
    return {"raw": c["raw"], "hits": c["hits"], "expected": round(c["expected"], 2),
            "query_peaks": c["query_peaks"], "votes": c["votes"], "source": r["source"],
            "condition": r["condition"],
            "log10_E_default": round(match.verify_calibrated(c["raw"], hours), 2)}


def figures(data: dict, match: AudioMatchParams) -> dict:
    s = data["summary"]
    hours = s["catalog_hours"]
    flagged = set(s["flagged"])
    limit = log10_expected(match.min_score)

    def passes(c: dict) -> bool:
        return c["hits"] >= match.verify_min_hits and \
            match.verify_calibrated(c["raw"], hours) <= limit + 1e-9

    out: dict = {"catalog_hours": hours, "flagged_sources": sorted(flagged)}
    for kind in ("unflagged", "flagged"):
        rows = [r for r in data["rows"] if r["negative"] and (r["source"] in flagged) == (kind == "flagged")]
        checks = [(c, r) for r in rows for c in r["checks"]]

        out[kind] = {
            "negatives": len(rows),
            "with_a_check": sum(bool(r["checks"]) for r in rows),
            "with_a_check_12_hits": sum(any(c["hits"] >= match.verify_min_hits for c in r["checks"])
                                        for r in rows),
            "checks": len(checks),
            "strongest_12_hits": strongest([cr for cr in checks
                                            if cr[0]["hits"] >= match.verify_min_hits], match, hours),
            "strongest_any_hits": strongest(checks, match, hours),
            "negatives_a_check_passes_default": sum(any(passes(c) for c in r["checks"]) for r in rows),
            "checks_passing_default": sum(passes(c) for c, _ in checks),
            "false_by_votes": sum(r["votes_false"] for r in rows)}
    recall: dict = defaultdict(lambda: [0, 0, 0, 0])
    for r in data["rows"]:
        if r["negative"]:
            continue
        cell = recall[f"{r['condition']} {r['seconds']:g}s"]
        cell[0] += 1
        cell[1] += r["votes_found"]
        cell[2] += r["votes_found"] or any(c["true"] and passes(c) for c in r["checks"])
        cell[3] += any(not c["true"] and passes(c) for c in r["checks"])
    out["positives"] = {k: dict(zip(("queries", "votes", "votes_and_check", "false_checked"), v))
                        for k, v in recall.items()}
    return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(json.dumps({"file": path, **figures(json.loads(gzip.open(path).read()),
                                                   AudioMatchParams())}))
