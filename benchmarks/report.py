"""Benchmark reports: Markdown tables and PNG plots from the runs' summary dicts."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np


def machine_description() -> str:
    import os

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def audio_markdown(summary: dict) -> str:
    """The audio section: recall table, false matches, speed and size."""
    rows = summary["rows"]
    by = {(r["condition"], r["length_s"]): r for r in rows}
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    lines = [
        "## Audio",
        "",
        "| condition | top-1 recall 5 s | top-1 recall 10 s | offset ≤ 0.1 s (5 s) | speed estimate |",
        "|---|---|---|---|---|",
    ]
    for c in conditions:
        r5, r10 = by.get((c, 5.0)), by.get((c, 10.0))
        lines.append(
            f"| {c} | {_pct(r5 and r5['top1_recall'])} | {_pct(r10 and r10['top1_recall'])} | "
            f"{_pct(r5 and r5['offset_within_0.1s'])} | "
            f"{_fmt(r5 and r5['median_speed_estimate'])} |"
        )
    build, neg = summary["build"], summary["negatives"]
    cfg = summary.get("config", {})
    lines += [
        "",
        f"Queries per condition and length: {cfg.get('queries_per_condition')}; "
        f"references: {build['references']} ({build['media_hours']:.2f} h).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| false matches on never-registered music | {neg['false_matches']} in {neg['queries']} "
        "queries |",
        f"| reference offset within 0.1 s (all correct matches) | "
        f"{_pct(summary['offset_within_0.1s_all'])} |",
        f"| fingerprinting speed, decode included | "
        f"{build['fingerprint_x_realtime_per_core']:.0f}× real time per core |",
        f"| query fingerprinting p50 (all speed/pitch candidates) | "
        f"{summary['query_fingerprint_ms_p50']:.1f} ms |",
        f"| query matching latency p50 / p99 (decode excluded) | "
        f"{summary['query_match_ms_p50']:.1f} / {summary['query_match_ms_p99']:.1f} ms |",
        f"| index size | {build['index_bytes_per_hour'] / 2**20:.2f} MiB per hour of audio |",
        f"| resident memory (peak, benchmark process) | {summary['max_rss_mb']:.0f} MiB |",
    ]
    cal = summary.get("calibration")
    if cal:
        lines += [
            f"| null distribution: most aligned hashes a negative reached | "
            f"{cal['null_votes_max']} (p99 {cal['null_votes_p99']:.1f}) over "
            f"{cal['null_queries']} queries; default min_votes {cal['defaults']['min_votes']} |",
        ]
    scale = summary.get("scale")
    if scale:
        lines += [
            f"| scale: synthetic catalog | {scale['hours']:.0f} h, {scale['postings']:,} postings, "
            f"{scale['bytes'] / 2**30:.1f} GiB |",
            f"| scale: query latency p50 / p99 | {scale['match_ms_p50']:.1f} / "
            f"{scale['match_ms_p99']:.1f} ms |",
            f"| scale: resident memory after queries | {scale['rss_mb']:.0f} MiB |",
        ]
    if summary.get("peer"):
        lines += ["", audio_peer_markdown(summary)]
    return "\n".join(lines) + "\n"


def _ratio(peer, nanhu) -> str:
    if peer is None or nanhu is None or nanhu == 0:
        return "–"
    return f"{peer / nanhu:.2f}×"


def audio_peer_markdown(summary: dict) -> str:
    """Nanhu next to audfprint (``summary["peer"]``, :mod:`benchmarks.peers.audfprint`): recall
    per condition, then false matches, speed, latency and size with peer ÷ Nanhu ratios."""
    peer = summary["peer"]
    names = peer["settings"]
    per = peer["by_setting"]
    nanhu = {(r["condition"], r["length_s"]): r["top1_recall"] for r in summary["rows"]}
    got = {(r["condition"], r["length_s"]): r["top1_recall"] for r in peer["rows"]}
    conditions = list(dict.fromkeys(r["condition"] for r in peer["rows"]))
    header = " | ".join(f"{who} {length:.0f} s" for length in (5.0, 10.0)
                        for who in ["Nanhu", *(f"peer {n}" for n in names)])
    lines = [
        f"### Peer: {peer['package']} (audfprint), same queries, same machine, same run",
        "",
        f"| condition | {header} |",
        "|---|" + "---|" * (2 * (1 + len(names))),
    ]
    for c in conditions:
        cells = []
        for length in (5.0, 10.0):
            cells.append(_pct(nanhu.get((c, length))))
            cells += [_pct(got[(c, length)][n]) if (c, length) in got else "–" for n in names]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    rows = summary["rows"]
    build, neg = summary["build"], summary["negatives"]
    nanhu_recall = (sum(r["top1_recall"] * r["queries"] for r in rows)
                    / max(1, sum(r["queries"] for r in rows)))
    measures = [
        # label, Nanhu value, per-setting value, format
        ("top-1 recall, all queries", nanhu_recall, lambda p: p["top1_recall_all"], _pct),
        (f"false matches in {neg['queries']} negative queries", neg["false_matches"],
         lambda p: p["negatives"]["false_matches"], str),
        ("fingerprinting, × real time per core (decode included)",
         build["fingerprint_x_realtime_per_core"],
         lambda p: p["build"]["fingerprint_x_realtime_per_core"], lambda v: f"{v:.0f}"),
        ("query latency p50, decode + fingerprint + match (ms)", peer.get("nanhu_total_ms_p50"),
         lambda p: p["query_total_ms_p50"], lambda v: f"{v:.1f}"),
        ("query latency p99, decode + fingerprint + match (ms)", peer.get("nanhu_total_ms_p99"),
         lambda p: p["query_total_ms_p99"], lambda v: f"{v:.1f}"),
        ("matching only p50 / p99 (ms)", (summary["query_match_ms_p50"],
                                          summary["query_match_ms_p99"]),
         lambda p: (p["query_match_ms_p50"], p["query_match_ms_p99"]),
         lambda v: f"{v[0]:.1f} / {v[1]:.1f}"),
        ("index on disk, MiB per hour of audio", build["index_bytes_per_hour"] / 2**20,
         lambda p: p["build"]["index_bytes_per_hour"] / 2**20, lambda v: f"{v:.2f}"),
    ]
    lines += [
        "",
        "| measure | Nanhu | " + " | ".join(f"peer {n}" for n in names) + " | "
        + " | ".join(f"{n} ÷ Nanhu" for n in names) + " |",
        "|---|---|" + "---|" * (2 * len(names)),
    ]
    for label, ours, theirs, fmt in measures:
        values = [theirs(per[n]) for n in names]
        cells = [("–" if ours is None else fmt(ours))] + [fmt(v) for v in values]
        if isinstance(ours, tuple):
            cells += [_ratio(v[1], ours[1]) + " (p99)" for v in values]
        else:
            cells += [_ratio(v, ours) for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    memory = ", ".join(f"{n} {per[n]['build']['table_bytes_in_memory'] / 2**20:.0f} MiB"
                       for n in names)
    settings = "; ".join(
        f"{n}: density {per[n]['settings']['density']:g}, fanout {per[n]['settings']['fanout']}, "
        f"query shifts {per[n]['settings']['query_shifts'] or 4}, "
        f"min-count {per[n]['settings']['min_count']}, maxtime 2^{per[n]['settings']['maxtimebits']}"
        for n in names)
    lines += [
        "",
        f"Peer settings ({settings}). audfprint holds its whole hash table in memory ({memory}), "
        "whatever the catalog size; it has no speed or pitch invariance.",
    ]
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def audio_plots(summary: dict, out_dir: Path) -> list[str]:
    """recall-vs-snr.png and recall-vs-speed.png; returns the file names written."""
    plt = pyplot()

    rows = summary["rows"]
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for noise in ("pink", "babble"):
        for length in (5.0, 10.0):
            pts = sorted(
                (int(r["condition"].split("snr")[1]), r["top1_recall"]) for r in rows
                if r["condition"].startswith(f"{noise}-snr") and r["length_s"] == length
            )
            if pts:
                x, y = zip(*pts)
                ax.plot(x, 100 * np.array(y), marker="o", label=f"{noise} noise, {length:.0f} s")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("top-1 recall (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Nanhu audio: recall against noise")
    fig.tight_layout()
    fig.savefig(out_dir / "recall-vs-snr.png", dpi=110)
    plt.close(fig)
    written.append("recall-vs-snr.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label in (("speed-", "speed (tempo+pitch)"), ("tempo-", "tempo only")):
        for length in (5.0, 10.0):
            pts = sorted(
                (float(r["condition"].split("-", 1)[1]), r["top1_recall"]) for r in rows
                if r["condition"].startswith(kind) and r["length_s"] == length
            )
            clean = [r["top1_recall"] for r in rows
                     if r["condition"] == "clean" and r["length_s"] == length]
            if pts:
                pts = sorted(pts + [(1.0, clean[0])] if clean else pts)
                x, y = zip(*pts)
                ax.plot(x, 100 * np.array(y), marker="o", label=f"{label}, {length:.0f} s")
    ax.set_xlabel("speed factor")
    ax.set_ylabel("top-1 recall (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Nanhu audio: recall against speed change")
    fig.tight_layout()
    fig.savefig(out_dir / "recall-vs-speed.png", dpi=110)
    plt.close(fig)
    written.append("recall-vs-speed.png")
    return written


def write_report(out_dir: Path, sections: dict[str, str], raw: dict, command: str) -> Path:
    """Write ``report.md`` (sections in order) and ``results.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = [
        "# Nanhu benchmark report",
        "",
        f"Machine: {machine_description()}.",
        f"Command: `{command}`.",
        "",
    ]
    body = "\n".join(sections.values())
    path = out_dir / "report.md"
    path.write_text("\n".join(header) + body)
    (out_dir / "results.json").write_text(json.dumps(raw, indent=1, default=float))
    return path
