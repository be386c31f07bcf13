"""What the review page draws and says about a claim: the two timelines (upload above,
reference below) with each matched stretch on both and a band joining them, and each match's
evidence in words. Plain numbers for the template's inline SVG; no drawing library."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, MARGIN = 760, 40
UPLOAD_Y, REFERENCE_Y, BAR_H = 34, 124, 22
HEIGHT = REFERENCE_Y + BAR_H + 34
COLOURS = {"audio": "#2b6cb0", "video": "#c05621", "audio+video": "#6b46c1"}
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class Stretch:
    """One match on both timelines (pixels), with its times for the tooltip."""

    upload_x0: float
    upload_x1: float
    reference_x0: float
    reference_x1: float
    colour: str
    label: str

    @property
    def band_points(self) -> str:
        """The polygon joining the stretch on the upload to the one on the reference."""
        top, bottom = UPLOAD_Y + BAR_H, REFERENCE_Y
        return (f"{self.upload_x0:.1f},{top} {self.upload_x1:.1f},{top} "
                f"{self.reference_x1:.1f},{bottom} {self.reference_x0:.1f},{bottom}")


def _ticks(total_s: float) -> list[tuple[float, str]]:
    step = next((s for s in _STEPS if total_s / s <= 8), _STEPS[-1])
    out, t = [], 0.0
    while t <= total_s + 1e-9:
        out.append((t, f"{t / 60:.0f} min" if step >= 60 else f"{t:g} s"))
        t += step
    return out


def timelines(claim: dict, reference_duration_s: float | None) -> dict:
    """Geometry of a claim's drawing: ``width``, ``height``, the bars' lengths in seconds,
    ``stretches`` and each bar's ticks as ``(x, label)``."""
    matches = claim["matches"]
    upload_s = max([claim.get("duration_s") or 0.0, *(m["query_end_s"] for m in matches), 1e-3])
    reference_s = max([reference_duration_s or 0.0, *(m["reference_end_s"] for m in matches), 1e-3])
    span = WIDTH - 2 * MARGIN

    def x(t: float, total: float) -> float:
        return MARGIN + span * min(max(t, 0.0), total) / total

    stretches = [Stretch(
        upload_x0=x(m["query_start_s"], upload_s), upload_x1=max(x(m["query_end_s"], upload_s),
                                                                 x(m["query_start_s"], upload_s) + 1),
        reference_x0=x(m["reference_start_s"], reference_s),
        reference_x1=max(x(m["reference_end_s"], reference_s),
                         x(m["reference_start_s"], reference_s) + 1),
        colour=COLOURS.get(m["modality"], "#4a5568"),
        label=(f"{m['modality']}: upload {m['query_start_s']:.1f}-{m['query_end_s']:.1f} s = "
               f"work {m['reference_start_s']:.1f}-{m['reference_end_s']:.1f} s"),
    ) for m in matches]
    return {
        "width": WIDTH, "height": HEIGHT, "margin": MARGIN, "span": span, "bar_h": BAR_H,
        "upload_y": UPLOAD_Y, "reference_y": REFERENCE_Y, "upload_s": upload_s,
        "reference_s": reference_s, "reference_known": bool(reference_duration_s),
        "stretches": stretches,
        "upload_ticks": [(x(t, upload_s), label) for t, label in _ticks(upload_s)],
        "reference_ticks": [(x(t, reference_s), label) for t, label in _ticks(reference_s)],
    }


def evidence_words(match: dict) -> list[str]:
    """A match's evidence for a reviewer, one sentence a line (its ``to_dict`` form)."""
    lines = [
        f"{match['modality']} match, band {match['band']}, score {match['score']:.6f} (chance "
        f"expects {match['expected_false_matches']:.3g} matches this strong against this catalog)",
        f"upload {match['query_start_s']:.1f}-{match['query_end_s']:.1f} s = work "
        f"{match['reference_start_s']:.1f}-{match['reference_end_s']:.1f} s at speed "
        f"{match['speed']:.3f}",
        f"{match['matched_s']:.1f} s matched: {100 * match['upload_share']:.0f}% of the upload, "
        f"{100 * match['reference_share']:.0f}% of the work",
    ]
    if match.get("reason"):
        lines.append(f"why: {match['reason']}")
    if match.get("action"):
        source = f" ({match['policy_source']} policy)" if match.get("policy_source") else ""
        lines.append(f"action: {match['action']}{source}")
    for cut in match.get("trimmed", ()):
        lines.append(f"trimmed (excluded range): upload {cut['query_start_s']:.1f}-"
                     f"{cut['query_end_s']:.1f} s = work {cut['reference_start_s']:.1f}-"
                     f"{cut['reference_end_s']:.1f} s")
    return lines
