"""What every benchmark plot shares: the file-only backend, binomial intervals, readable log
axes, visible zero bars, and one place figures are saved (tests look at them there).

Recall is a share of queries, so a point resting on 5 queries and one resting on 200 must not
look alike: plots draw each share's 95 % Wilson interval and say how many queries it rests on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

#: z for a two-sided 95 % interval
Z95 = 1.959963984540054


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``successes / n`` (95 % by default).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 % or 100 %:
    0 of 10 gives (0, 0.28). ``n == 0`` knows nothing: (0, 1).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, not 0.9999999
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def recall_error(recall: float, n: int) -> tuple[float, float]:
    """(below, above) distances in percentage points from ``recall`` to its Wilson interval,
    as ``errorbar(yerr=...)`` takes them."""
    low, high = wilson_interval(round(recall * n), n)
    return 100 * max(0.0, recall - low), 100 * max(0.0, high - recall)


def n_label(counts: Sequence[int]) -> str:
    """How many queries a series' points rest on: ``n=25 each`` or ``n=20-25``."""
    counts = sorted(set(int(c) for c in counts))
    if not counts:
        return "n=0"
    return f"n={counts[0]} each" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]}"


def plain_number(value: float, _position: float | None = None) -> str:
    """A tick label without exponents: 0.02, 5, 200, 3,000, 40k, 2M."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    if abs(value) >= 1:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{value:.2g}" if abs(value) >= 1e-3 else f"{value:.0e}"


def readable_log_axis(ax, which: str = "both") -> None:
    """Label a log axis with a few plain numbers and leave its minor ticks unlabelled.

    matplotlib's default labels minor ticks on short ranges in scientific notation, and the
    labels run into each other ("3x10^1 4x10^1"). Here: 1-2-5 steps over up to about two and a
    half decades, decades beyond, and, on a range too short for either to give two ticks, a
    few evenly spaced ones. Call it after the data and limits are set.
    """
    from matplotlib import ticker

    axes = {"x": [ax.xaxis], "y": [ax.yaxis], "both": [ax.xaxis, ax.yaxis]}[which]
    for axis in axes:
        if axis.get_scale() != "log":
            continue
        low, high = sorted(axis.get_view_interval())
        decades = math.log10(high / low) if low > 0 else 12.0
        subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)
        locator = ticker.LogLocator(base=10, subs=subs, numticks=12)
        inside = [t for t in locator.tick_values(low, high) if low <= t <= high]
        if len(inside) < 2:
            locator = ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])
        axis.set_major_locator(locator)
        axis.set_major_formatter(ticker.FuncFormatter(plain_number))
        axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
        axis.set_minor_formatter(ticker.NullFormatter())


def recall_bars(ax, positions: Sequence[float], values: Sequence[float | None],
                counts: Sequence[int], *, width: float, label: str, fontsize: float = 6) -> None:
    """Bars of recall (shares in [0, 1]) with their Wilson intervals.

    A bar of 0 gets a short stub in its colour and a "0" above its interval, so a system that
    found nothing is seen, not mistaken for a gap; a share not measured (None) gets "n/a".
    """
    heights = [100 * v if v is not None else 0.0 for v in values]
    bars = ax.bar(positions, heights, width=width, label=label)
    colour = bars.patches[0].get_facecolor() if bars.patches else None
    measured = [i for i, v in enumerate(values) if v is not None]
    if measured:
        errors = [recall_error(values[i], counts[i]) for i in measured]
        ax.errorbar([positions[i] for i in measured], [heights[i] for i in measured],
                    yerr=list(zip(*errors)), fmt="none", ecolor="black", elinewidth=0.7,
                    capsize=1.5)
    for i, value in enumerate(values):
        if value is None:
            ax.text(positions[i], 1, "n/a", ha="center", va="bottom", rotation=90,
                    fontsize=fontsize, color="grey")
        elif value == 0:
            ax.hlines(0, positions[i] - width / 2, positions[i] + width / 2, colors=[colour],
                      linewidth=3, clip_on=False)
            above = recall_error(0.0, counts[i])[1]
            ax.text(positions[i], above + 1, "0", ha="center", va="bottom", fontsize=fontsize)


def save_figure(fig, path: Path) -> str:
    """Write ``fig`` to ``path`` (PNG) and close it; returns the file name for the report."""
    plt = pyplot()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log.info("wrote %s", path)
    return Path(path).name
