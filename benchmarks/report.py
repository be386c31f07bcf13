"""Benchmark reports: Markdown tables and PNG plots from the runs' summary dicts."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from nanhu.benchmarks.plotting import n_label, pyplot, recall_error, save_figure

__all__ = ["audio_markdown", "audio_peer_markdown", "audio_plots", "pyplot", "write_report"]


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


def recall_series(summary: dict) -> list[tuple[str, list[dict]]]:
    """Each system's recall points, Nanhu first, then every peer setting that ran on the same
    queries: ``[(system, [{"condition", "length_s", "recall", "n"}])]``."""
    series = [("Nanhu", [{"condition": r["condition"], "length_s": r["length_s"],
                          "recall": r["top1_recall"], "n": r["queries"]}
                         for r in summary["rows"]])]
    peer = summary.get("peer") or {}
    for name in peer.get("settings") or []:
        series.append((f"audfprint {name}", [
            {"condition": r["condition"], "length_s": r["length_s"],
             "recall": r["top1_recall"][name], "n": r["queries"]}
            for r in peer.get("rows", []) if name in r["top1_recall"]]))
    return series


def _snr_points(condition: str) -> list[tuple[str, float]]:
    for noise in ("pink", "babble"):
        if condition.startswith(f"{noise}-snr"):
            return [(f"{noise} noise", float(condition.split("snr")[1]))]
    return []


def _speed_points(condition: str) -> list[tuple[str, float]]:
    if condition == "clean":  # speed 1: the start of both curves, not a curve of its own
        return [("speed (tempo+pitch)", 1.0), ("tempo only", 1.0)]
    for kind, group in (("speed-", "speed (tempo+pitch)"), ("tempo-", "tempo only")):
        if condition.startswith(kind):
            return [(group, float(condition.split("-", 1)[1]))]
    return []


def _recall_plot(summary: dict, out_dir: Path, name: str, *, points, xlabel: str, what: str,
                 jitter: float) -> list[str]:
    """One panel per query length; a line per system and group (noise kind, speed kind), each
    point with its 95 % Wilson interval, each line's legend saying its n. Peer lines are
    dashed beside Nanhu's solid ones and nudged sideways so the intervals do not hide each
    other. Nothing is written when no condition of this plot ran."""
    series = recall_series(summary)
    lengths = sorted({p["length_s"] for _, rows in series for p in rows})
    curves = []  # (system index, system, group, length, [(x, recall, n)])
    for index, (system, rows) in enumerate(series):
        for length in lengths:
            groups: dict[str, list[tuple[float, float, int]]] = {}
            attacked: set[str] = set()
            for p in rows:
                if p["length_s"] != length:
                    continue
                for group, x in points(p["condition"]):
                    groups.setdefault(group, []).append((x, p["recall"], p["n"]))
                    if p["condition"] != "clean":
                        attacked.add(group)
            curves += [(index, system, g, length, sorted(groups[g])) for g in groups if g in attacked]
    if not curves:
        return []
    lengths = sorted({c[3] for c in curves})  # no empty panels
    plt = pyplot()
    fig, axes = plt.subplots(1, len(lengths), figsize=(6 * len(lengths), 4.4), squeeze=False)
    group_names = list(dict.fromkeys(c[2] for c in curves))
    for index, system, group, length, pts in curves:
        ax = axes[0][lengths.index(length)]
        x, recall, n = (np.array(v, float) for v in zip(*pts))
        shift = (index - (len(series) - 1) / 2) * jitter
        errors = np.array([recall_error(r, int(k)) for r, k in zip(recall, n)]).T
        # colour: the system; marker: the group; dashed: a peer
        ax.errorbar(x + shift, 100 * recall, yerr=errors, color=f"C{index}",
                    linestyle="-" if index == 0 else "--",
                    marker="os^D"[group_names.index(group) % 4], markersize=4, capsize=2,
                    elinewidth=0.8, label=f"{system}, {group} ({n_label(n)})")
    peers = [s for s, _ in series[1:]]
    for ax, length in zip(axes[0], lengths):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 recall (%)")
        ax.set_ylim(-4, 104)  # a point at 0 % stays in view, above the axis
        ax.grid(alpha=0.3)
        ax.set_title(f"{length:g} s queries", fontsize=10)
    legend = {}  # one legend for the panels, below them, off the data
    for ax in axes[0]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    rows = -(-len(legend) // 3)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, fontsize=7,
               frameon=False)
    who = ("Nanhu beside " + ", ".join(peers) + " on the same queries" if peers
           else "Nanhu (the audfprint peer did not run)")
    fig.suptitle(f"Audio top-1 recall against {what}: {who} (bars: 95 % Wilson interval)",
                 fontsize=10)
    fig.set_figheight(4.0 + 0.2 * rows)
    fig.tight_layout(rect=(0, 0.2 * rows / fig.get_figheight() + 0.02, 1, 1))
    return [save_figure(fig, out_dir / name)]


def audio_plots(summary: dict, out_dir: Path) -> list[str]:
    """recall-vs-snr.png and recall-vs-speed.png, the peers beside Nanhu when they ran;
    returns the file names written."""
    return (_recall_plot(summary, out_dir, "recall-vs-snr.png", points=_snr_points,
                         xlabel="SNR (dB)", what="noise", jitter=0.25)
            + _recall_plot(summary, out_dir, "recall-vs-speed.png", points=_speed_points,
                           xlabel="speed factor", what="speed change", jitter=0.003))


SMOKE_TEST_BANNER = (
    "> **Smoke test, not a measurement.** This report comes from `nanhu bench --tiny`: a few "
    "generated files and one query or so per condition, run to check that every step of the "
    "tooling works. None of its figures says anything about Nanhu's accuracy, speed or size; "
    "`nanhu bench --quick` and the full run measure those.\n\n")


def banner(size: str) -> str:
    """What a report of this size must open with: the smoke-test warning for ``tiny``."""
    return SMOKE_TEST_BANNER if size == "tiny" else ""


def write_report(out_dir: Path, sections: dict[str, str], raw: dict, command: str, *,
                 size: str = "full") -> Path:
    """Write ``report.md`` (sections in order) and ``results.json``; a ``tiny`` run's both say
    first that they are a smoke test."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = ["# Nanhu benchmark report", ""]
    if banner(size):
        header += [banner(size)]
        raw = {"smoke_test": banner(size).strip("> \n").replace("**", ""), **raw}
    header += [
        f"Machine: {machine_description()}.",
        f"Command: `{command}`.",
        "",
    ]
    body = "\n".join(sections.values())
    path = out_dir / "report.md"
    path.write_text("\n".join(header) + body)
    (out_dir / "results.json").write_text(json.dumps(raw, indent=1, default=float))
    return path
