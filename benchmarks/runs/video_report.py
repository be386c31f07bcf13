"""The video section of the benchmark report: Markdown tables and the recall-per-attack plot,
from :func:`benchmarks.runs.video.run_video_bench`'s summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def video_markdown(summary: dict) -> str:
    """The video section of the benchmark report."""
    cfg = summary["config"]
    lengths = sorted(float(k) for k in cfg["clips_per_attack"])
    by = {(r["attack"], r["length_s"]): r for r in summary["rows"]}
    head = " / ".join(f"{L:.0f} s" for L in lengths) + " / all"
    lines = [
        "## Video", "",
        f"References: {cfg['references']} ({summary['build']['media_hours']:.2f} h); clips per "
        f"attack: {', '.join(f'{n} x {L} s' for L, n in cfg['clips_per_attack'].items())}; "
        f"negatives: {cfg['negatives']}; queries decoded at {cfg['work_size'][0]}x"
        f"{cfg['work_size'][1]} before attacking, then H.264 (x264 ultrafast, CRF 23 unless "
        "stated) + AAC. Top-1 recall in %; vPDQ = PDQ per frame at 1 fps with threatexchange's "
        "rule (quality >= 50, distance <= 31, >= 80 % of query frames).", "",
        f"| attack | Nanhu video only ({head}) | Nanhu fused ({head}) | vPDQ ({head}) | "
        "vPDQ, refs at 5 fps (all) | fused hits: video / audio / a+v |",
        "|---|---|---|---|---|---|",
    ]
    for name in cfg["attacks"]:
        cells = []
        for key in ("recall_video", "recall_fused", "recall_pdq"):
            cells.append(" / ".join(_pct(by[(name, L)][key]) if (name, L) in by else "–"
                                    for L in [*lengths, None]))
        cells.append(_pct(by[(name, None)]["recall_pdq_5fps"]) if (name, None) in by else "–")
        modality = by[(name, None)]["fused_modality"] if (name, None) in by else {}
        cells.append(" / ".join(str(modality.get(m, 0)) for m in ("video", "audio", "audio+video")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fm, loc, ap, lat = (summary["false_matches"], summary["localisation"], summary["micro_ap"],
                        summary["latency"])
    pdq_fm, dense_fm = fm.get("pdq"), fm.get("pdq_5fps")
    scale, speed, bph = summary["scale"], summary["speed"], summary["bytes_per_hour"]

    def loc_cell(entry: dict) -> str:
        if not entry.get("hits"):
            return "no hits"
        return (f"{_pct(entry['within_1s'])} % of {entry['hits']} hits within 1 s; median worst "
                f"error {entry['median_worst_error_s']:.2f} s (reference start "
                f"{entry['median_reference_start_error_s']:.2f} s)")

    lines += [
        "", "| measure | value |", "|---|---|",
        f"| false matches on never-registered video (queries flagged / matches) | fused "
        f"{fm['fused']['queries_with_false_match']} / {fm['fused']['false_matches']}, video only "
        f"{fm['video']['queries_with_false_match']} / {fm['video']['false_matches']}, vPDQ "
        f"{pdq_fm['queries_with_false_match'] if pdq_fm else '–'} (refs at 5 fps: "
        f"{dense_fm['queries_with_false_match'] if dense_fm else '–'}), of "
        f"{fm['fused']['queries']} queries |",
        f"| localisation, fused | {loc_cell(loc['fused'])} |",
        f"| localisation, video only | {loc_cell(loc['video'])} |",
        f"| segment µAP (pooled, VSC22-style) | fused {ap['fused']:.3f}, video only "
        f"{ap['video']:.3f} |",
        f"| fingerprint_video time / plain decode time | {speed['ratio_median']:.2f}x wall, "
        f"{speed['cpu_ratio_median']:.2f}x CPU (median of {len(speed['files'])} references; "
        f"plain decode {speed['decode_fps_median']:.0f} frames/s) |",
        f"| reference registration (audio + video, decode included) | "
        f"{summary['build']['x_realtime']:.1f}x real time |",
        f"| query fingerprinting p50 (audio + video) | {_ms(lat['fingerprint_ms_p50'])} ms |",
        f"| match latency at corpus size ({summary['build']['keyframes']:,} keyframes) p50 / p99 | "
        f"fused {_ms(lat['match_ms_p50'])} / {_ms(lat['match_ms_p99'])} ms, video only "
        f"{_ms(lat['match_video_ms_p50'])} / {_ms(lat['match_video_ms_p99'])} ms |",
        f"| video search + alignment at {scale['keyframes']:,} keyframes (d={scale['dim']}), "
        f"p50 / p99 | flat {_ms(scale['flat']['latency_ms_p50'])} / "
        f"{_ms(scale['flat']['latency_ms_p99'])} ms; HNSW (M=32, efSearch 64) "
        f"{_ms(scale['hnsw']['latency_ms_p50'])} / {_ms(scale['hnsw']['latency_ms_p99'])} ms "
        f"(build {scale['hnsw']['build_s']:.0f} s) |",
        f"| HNSW recall@{scale['k']} vs flat on real query vectors | "
        + ", ".join(f"efSearch {ef}: {_pct(r, 1)} %" for ef, r in scale["hnsw"]["recall_at_k"].items())
        + f"; same best reference after alignment: {_pct(scale['top1_agreement'])} % |",
        f"| video index size | {bph['video'] / 2**20:.2f} MiB per hour "
        f"({bph['keyframes_per_hour']:.0f} keyframes per hour); audio {bph['audio'] / 2**20:.2f} "
        "MiB per hour |",
        f"| vPDQ baseline | {summary['baseline'].get('frames', 0):,} reference frames at 1 fps "
        f"({summary['baseline'].get('frames_5fps', 0):,} at 5 fps); "
        f"query hashing + matching p50 {_ms(lat['pdq_ms_p50'])} ms |",
    ]
    if summary["baseline"]["available"]:
        lines.append(f"| vPDQ baseline unavailable | {summary['baseline']['available']} |")
    return "\n".join(lines) + "\n"


def video_plots(summary: dict, out_dir: Path) -> list[str]:
    """video-recall-per-attack.png: recall per attack (all lengths pooled) for Nanhu and, where
    it ran, vPDQ; each bar with its 95 % Wilson interval, each attack with its n; a bar of 0 is
    drawn as a stub marked "0", a system that did not run on an attack as "n/a"."""
    from nanhu.benchmarks.plotting import pyplot, recall_bars, save_figure

    plt = pyplot()

    names = summary["config"]["attacks"]
    pooled = {r["attack"]: r for r in summary["rows"] if r["length_s"] is None}
    series = [("recall_video", "Nanhu video only"), ("recall_fused", "Nanhu fused"),
              ("recall_pdq", "vPDQ (PDQ 1 fps)"), ("recall_pdq_5fps", "vPDQ, refs at 5 fps")]
    series = [(key, label) for key, label in series  # a peer that never ran is no series
              if any(pooled.get(n, {}).get(key) is not None for n in names)]
    fig, ax = plt.subplots(figsize=(14, 5.2))
    x = np.arange(len(names))
    width = 0.84 / max(1, len(series))
    counts = [pooled[n]["queries"] if n in pooled else 0 for n in names]
    for i, (key, label) in enumerate(series):
        recall_bars(ax, x + (i - (len(series) - 1) / 2) * width,
                    [pooled[n][key] if n in pooled else None for n in names], counts,
                    width=width, label=label)
    ax.set_xticks(x, [f"{n} (n={c})" for n, c in zip(names, counts)], rotation=60, ha="right",
                  fontsize=8)
    ax.set_ylabel("top-1 recall (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=len(series), fontsize=8)
    lengths = ", ".join(f"{float(L):g}" for L in summary["config"]["clips_per_attack"])
    missing = "" if any(k.startswith("recall_pdq") for k, _ in series) else "; vPDQ did not run"
    ax.set_title(f"Video top-1 recall per attack ({lengths} s clips pooled; n = clips per attack; "
                 f"bars: 95 % Wilson interval{missing})", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "video-recall-per-attack.png")]
