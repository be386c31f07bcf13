"""Text for people in the command line's output: times, sizes, media hours and tables."""

from __future__ import annotations

import time


def iso_time(epoch_s: float) -> str:
    """ISO 8601 in UTC to the second (``2026-12-01T10:00:00Z``); ``-`` for an unknown time."""
    if not epoch_s:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def human_bytes(n: float) -> str:
    """``1.4 MiB``: bytes in binary units, three significant figures."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_hours(hours: float) -> str:
    """``18.5 h``, ``12.3 min`` or ``40 s``: media time in the unit that reads best."""
    if hours >= 1:
        return f"{hours:,.1f} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.1f} min"
    return f"{hours * 3600:.0f} s"


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell (the last one is not padded)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1]
            for row in (header, *rows)]
