"""Predicted against observed for the peak check's calibration: the share of never-registered
queries whose best calibrated E (checked-in calibration, AudioMatchParams()) is at most x,
against x. E is the expected number of chance matches a query, so the share should be about x
at small x.

    python plot_calibration.py [18h/verify-null.json.gz 1018h/... 10018h/...]

Unflagged negatives only. A query's best E is over its checks with at least verify_min_hits
hits (as the default rule and the fit count them; a query with no such check has no E and
counts as above every x); the "any hits" columns drop the hits floor. Prints a markdown table
(counts, shares, a 95 % upper bound where nothing was seen) and writes calibration.png here."""
import gzip
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanhu.engine.audio.align import AudioMatchParams  # noqa: E402

HERE = Path(__file__).resolve().parent
XS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)


def best_log10_e(data: dict, match: AudioMatchParams, min_hits: int) -> np.ndarray:
    """Each unflagged negative's best calibrated log10 E (inf where it has no check)."""
    hours = data["summary"]["catalog_hours"]
    flagged = set(data["summary"]["flagged"])
    best = []
    for r in data["rows"]:
        if not r["negative"] or r["source"] in flagged:
            continue
        es = [match.verify_calibrated(c["raw"], hours) for c in r["checks"] if c["hits"] >= min_hits]
        best.append(min(es, default=np.inf))
    return np.array(best)


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [HERE / s / "verify-null.json.gz"
                                               for s in ("18h", "18h-heldout", "1018h", "10018h")]
    match = AudioMatchParams()
    fig, ax = plt.subplots(figsize=(6, 5))
    print("| catalog | negatives | hits floor | " + " | ".join(f"E <= {x:g}" for x in XS) + " |")
    print("|---|---|---|" + "---|" * len(XS))
    for path, colour in zip(paths, ("tab:blue", "tab:purple", "tab:orange", "tab:green")):
        data = json.loads(gzip.open(path).read())
        hours = data["summary"]["catalog_hours"]
        for min_hits, style in ((match.verify_min_hits, "-"), (0, ":")):
            best = best_log10_e(data, match, min_hits)
            n = best.size
            counts = [int(np.count_nonzero(best <= np.log10(x) + 1e-9)) for x in XS]
            cells = [f"{k} ({k / n:.2g})" if k else f"0 (< {3.0 / n:.1g})" for k in counts]
            floor = f">= {min_hits}" if min_hits else "any"
            print(f"| {hours:,.1f} h | {n} | {floor} | " + " | ".join(cells) + " |")
            xs = np.array([x for x, k in zip(XS, counts) if k])
            share = np.array([k / n for k in counts if k])
            label = f"{hours:,.1f} h" + (" held out" if "heldout" in str(path) else "") + (
            "" if min_hits else " (any hits)")
            ax.plot(xs, share, style, marker="o" if min_hits else None, color=colour, label=label)
            zeros = [x for x, k in zip(XS, counts) if not k]
            if zeros and min_hits:
                ax.plot(zeros, [3.0 / n] * len(zeros), "v", color=colour, mfc="none")
    grid = np.logspace(-5, 0, 50)
    ax.plot(grid, grid, "k--", lw=1, label="share = E (calibrated)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(5e-5, 2)
    ax.set_ylim(1e-4, 1.5)
    ax.set_xlabel(f"x (checked-in calibration: log10 E = {match.verify_offset:g} + "
                  f"{match.verify_slope:g} raw)")
    ax.set_ylabel("share of null queries with best E <= x")
    ax.set_title("Peak check: predicted vs observed null (5 s, unflagged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.annotate("open triangles: none seen (95 % bound 3/n)", (6e-5, 1.3e-4), fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "calibration.png", dpi=120)


if __name__ == "__main__":
    main()
