"""Cross-section plots of the benchmark report: latency against catalog size, index size.

Both read the summaries the sections already produce (``results.json`` keys ``audio`` and
``video``) and skip what a run did not measure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanhu.benchmarks.plotting import pyplot, readable_log_axis, save_figure

#: one latency point: (catalog size, p50 ms, p99 ms, queries timed or None when not recorded)
Point = tuple[float, float, float, int | None]


def latency_points(raw: dict) -> dict[str, list[Point]]:
    """Series of (catalog size, p50 ms, p99 ms, n queries): audio by hours of audio, video by
    keyframes."""
    series: dict[str, list[Point]] = {}
    audio = raw.get("audio")
    if audio:
        timed = sum(r["queries"] for r in audio["rows"]) or None  # every positive query
        series["audio (hours of audio)"] = [(audio["build"]["media_hours"],
                                             audio["query_match_ms_p50"],
                                             audio["query_match_ms_p99"], timed)]
    scale = (raw.get("scale") or {}).get("audio")
    if scale:  # positives and negatives are both timed
        series["audio, audio-v3 (hours of audio)"] = sorted(
            (s["hours"], s["match_ms_p50"], s["match_ms_p99"],
             s.get("queries", 0) + s.get("negatives", 0) or None) for s in scale)
    video = raw.get("video")
    if video:
        latency, scale = video["latency"], video.get("scale") or {}
        positives = sum(r["queries"] for r in video["rows"] if r["length_s"] is None) or None
        corpus = (video["build"]["keyframes"], latency["match_video_ms_p50"],
                  latency["match_video_ms_p99"], positives)
        for kind, label in (("flat", "video, exact search (keyframes)"),
                            ("hnsw", "video, HNSW (keyframes)")):
            entry = scale.get(kind) or {}
            if entry.get("latency_ms_p50") is not None:
                series[label] = [corpus, (scale["keyframes"], entry["latency_ms_p50"],
                                          entry["latency_ms_p99"], scale.get("queries"))]
    return series


def _n_text(counts) -> str:
    """The legend's n: one number when every point of the series rests on as many queries,
    else a pointer to the numbers written at the points."""
    known = sorted({n for n in counts if n})
    if not known:
        return ""
    return f", n={known[0]}" if len(known) == 1 else ", n at each point"


def latency_vs_size_plot(raw: dict, out_dir: Path) -> list[str]:
    """latency-vs-catalog-size.png: match latency p50 (line) and p99 (dotted), log-log, each
    point marked with the number of queries timed."""
    series = latency_points(raw)
    if not series:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for label, points in series.items():
        ax = axes[0] if label.startswith("audio") else axes[1]
        sizes, p50, p99, counts = zip(*points)
        line, = ax.plot(sizes, p50, marker="o", label=f"{label} p50{_n_text(counts)}")
        ax.plot(sizes, p99, marker="x", linestyle=":", color=line.get_color(), label=f"{label} p99")
        for size, value, n in zip(sizes, p50, counts):
            if n and len(set(counts)) > 1:
                ax.annotate(f"n={n}", (size, value), textcoords="offset points", xytext=(4, -10),
                            fontsize=6, color=line.get_color())
    for ax, xlabel, title in ((axes[0], "catalog size (hours of audio)", "Audio matching"),
                              (axes[1], "catalog size (keyframes)", "Video search + alignment")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(100, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("latency per query (ms)")
        ax.set_title(title)
        ax.margins(x=0.15, y=0.2)  # room for the n labels
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        readable_log_axis(ax)
    fig.suptitle("Latency against catalog size (dashed: 100 ms; n: queries timed)")
    fig.tight_layout()
    return [save_figure(fig, out_dir / "latency-vs-catalog-size.png")]


def index_sizes(raw: dict) -> dict[str, float]:
    """Index bytes per hour of media, per system and modality."""
    sizes: dict[str, float] = {}
    audio = raw.get("audio")
    if audio:
        sizes["Nanhu audio"] = audio["build"]["index_bytes_per_hour"]
        peer = audio.get("peer") or {}
        for name, entry in (peer.get("by_setting") or {}).items():
            per_hour = (entry.get("build") or {}).get("index_bytes_per_hour")
            if per_hour:
                sizes[f"audfprint audio ({name})"] = per_hour
    video = raw.get("video")
    if video:
        sizes["Nanhu video"] = video["bytes_per_hour"]["video"]
        base = video.get("baseline") or {}
        hours = video["build"]["media_hours"]
        if base.get("frames"):
            # A PDQ hash is 32 bytes; vPDQ also keeps a quality and a timestamp per frame.
            sizes["vPDQ video (1 fps)"] = base["frames"] * (32 + 4 + 4) / hours
    return sizes


def index_size_plot(raw: dict, out_dir: Path) -> list[str]:
    """index-bytes-per-hour.png: a bar per system and modality (log scale)."""
    sizes = index_sizes(raw)
    if not sizes:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(sizes)
    values = [sizes[n] / 2**20 for n in names]
    bars = ax.barh(names, values)
    ax.bar_label(bars, labels=[f"{v:.2f} MiB/h" for v in values], fontsize=8, padding=3)
    ax.set_xscale("log")
    ax.set_xlabel("index size (MiB per hour of media, log scale)")
    ax.set_title("Index bytes per hour")
    ax.set_xlim(min(values) / 3, max(values) * 20)
    ax.grid(axis="x", alpha=0.3, which="both")
    readable_log_axis(ax, "x")
    fig.tight_layout()
    return [save_figure(fig, out_dir / "index-bytes-per-hour.png")]


def summary_markdown(raw: dict) -> str:
    """The cross-section part of the report: latency series table, index sizes."""
    lines = ["## Scale and size", "", "| series | catalog size | p50 (ms) | p99 (ms) | queries timed |",
             "|---|---|---|---|---|"]
    for label, points in latency_points(raw).items():
        lines += [f"| {label} | {size:,.{2 if size < 10 else 0}f} | {p50:.1f} | {p99:.1f} | "
                  f"{n if n else '–'} |" for size, p50, p99, n in points]
    lines += ["", "| index | MiB per hour of media |", "|---|---|"]
    lines += [f"| {name} | {value / 2**20:.3f} |" for name, value in index_sizes(raw).items()]
    return "\n".join(lines) + "\n"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _p(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


#: the headline table's groups: a label and the conditions (audio) or attacks (video) averaged
AUDIO_GROUPS = (("clean and codecs", ["clean", "mp3-128k", "amr-nb-12.2k"]),
                ("pink noise", ["pink-snr5", "pink-snr0"]),
                ("speed", ["speed-0.9", "speed-1.1"]),
                ("tempo and pitch", ["tempo-1.05", "pitch+1"]))
VIDEO_GROUPS = (("mild attacks", ["360p", "low-bitrate-150k", "240p", "letterbox", "pillarbox",
                                  "brightness+20%", "contrast-0.6", "gamma-1.6", "grayscale",
                                  "blur-3px", "fps-15", "fps-60"]),
                ("hard attacks", ["crop-20%", "hflip", "caption", "logo", "noise-20", "speed-0.8",
                                  "speed-1.25"]))


def _which(ran: list[str], of: list[str]) -> str:
    """The members of a group that ran, by name, and how many of the group that is."""
    names = ", ".join(ran)
    return names if len(ran) == len(of) else f"{names}; {len(ran)} of {len(of)}"


def headline_table(raw: dict) -> str:
    """One short table of the run's headline figures, Nanhu beside the peers (the README's
    results section is this table). Each label names what its figure rests on: the conditions
    or attacks that ran (a group only partly run says so) and the number of queries."""
    rows = ["| measure | Nanhu | peer |", "|---|---|---|"]
    audio = raw.get("audio")
    if audio:
        by = {(r["condition"], r["length_s"]): r for r in audio["rows"]}
        peer = audio.get("peer") or {}
        peer_rows = {(r["condition"], r["length_s"]): r for r in peer.get("rows", [])}
        names = peer.get("settings") or []

        def peer_cell(conditions: list[str], length: float) -> str:
            ran = [c for c in conditions if (c, length) in peer_rows]
            if not names or not ran:
                return "–"
            cells = [f"{name} {_p(_mean([peer_rows[(c, length)]['top1_recall'][name] for c in ran]))}"
                     for name in names]
            only = "" if ran == conditions else f" (on {', '.join(ran)} only)"
            return "audfprint " + ", ".join(cells) + only

        for label, conditions in AUDIO_GROUPS:
            ran = [c for c in conditions if (c, 5.0) in by]
            if ran:
                n = sum(by[(c, 5.0)]["queries"] for c in ran)
                rows.append(f"| audio 5 s, {label}: {_which(ran, conditions)} (mean top-1 recall, "
                            f"n={n}) | {_p(_mean([by[(c, 5.0)]['top1_recall'] for c in ran]))} | "
                            f"{peer_cell(ran, 5.0)} |")
        neg = audio["negatives"]
        peer_false = ", ".join(
            f"{n} {s['negatives']['false_matches']}" for n, s in (peer.get("by_setting") or {}).items())
        rows.append(f"| audio false matches | {neg['false_matches']} in {neg['queries']} | "
                    f"{'audfprint ' + peer_false if peer_false else '–'} |")
        rows.append(f"| audio match latency p50 / p99 ({audio['build']['media_hours']:.1f} h) | "
                    f"{audio['query_match_ms_p50']:.0f} / {audio['query_match_ms_p99']:.0f} ms | – |")
    video = raw.get("video")
    if video:
        pooled = {r["attack"]: r for r in video["rows"] if r["length_s"] is None}
        for label, attacks in VIDEO_GROUPS:
            ran = [pooled[a] for a in attacks if a in pooled]
            if not ran:
                continue
            n = sum(r["queries"] for r in ran)
            pdq = [r for r in ran if r["recall_pdq"] is not None]
            pdq_cell = "–"
            if pdq:
                pdq_cell = f"vPDQ {_p(_mean([r['recall_pdq'] for r in pdq]))}" + (
                    "" if len(pdq) == len(ran) else f" (on {len(pdq)} of them)")
            rows.append(
                f"| video, {label}: {_which([r['attack'] for r in ran], attacks)} (mean top-1 "
                f"recall, fused / video only, n={n}) | "
                f"{_p(_mean([r['recall_fused'] for r in ran]))} / "
                f"{_p(_mean([r['recall_video'] for r in ran]))} | {pdq_cell} |")
        fm = video["false_matches"]
        pdq_fm = fm.get("pdq") or {}
        rows.append(f"| video false matches | {fm['fused']['queries_with_false_match']} in "
                    f"{fm['fused']['queries']} | vPDQ {pdq_fm.get('queries_with_false_match', '–')} |")
        rows.append(f"| video fingerprinting / plain decode | {video['speed']['ratio_median']:.2f}x | – |")
        scale = video.get("scale") or {}
        if (scale.get("hnsw") or {}).get("latency_ms_p50") is not None:
            rows.append(f"| video search + alignment at {scale['keyframes']:,} keyframes p50 | "
                        f"{scale['hnsw']['latency_ms_p50']:.0f} ms (HNSW) | – |")
    server = raw.get("server")
    if server and "10s x1" in server.get("stream", {}):
        rows.append(f"| server: 10 s uploads, 1 client p50; 8 vs 1 client throughput | "
                    f"{server['stream']['10s x1']['p50_s']:.2f} s; "
                    f"{server['speedup_8_over_1_10s']:.2f}x | – |")
    ingest = raw.get("ingest")
    if ingest and "speedup_2_vs_1" in ingest:
        rows.append(f"| ingest: 2 vs 1 workers | {ingest['speedup_2_vs_1']:.2f}x | – |")
    for name, value in index_sizes(raw).items():
        rows.append(f"| index size, {name} | {value / 2**20:.2f} MiB/h | – |")
    return "\n".join(rows) + "\n"


def calibration_plot(null: dict[str, list[float]], out_dir: Path, calibrate=None) -> list[str]:
    """calibration.png: observed share of never-registered queries whose best chance figure is
    at most x, against x (the predicted expected number of false matches), per catalog size.

    ``null`` holds each size's raw (Poisson) figures; ``calibrate(log10_raw, hours)`` maps them
    to the score's calibrated figure (the plot shows both)."""
    if not null:
        return []
    calibrate = calibrate or (lambda value, hours: value)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    grid = np.logspace(-12, 0, 60)
    for hours, values in sorted(null.items(), key=lambda kv: float(kv[0])):
        raw = np.asarray(values, float)
        cal = np.array([calibrate(v, float(hours)) if np.isfinite(v) else np.inf for v in raw])
        line, = ax.plot(grid, np.maximum([(10.0 ** cal <= x).mean() for x in grid], 1e-5),
                        label=f"{float(hours):,.0f} h, calibrated (n={raw.size})")
        ax.plot(grid, np.maximum([(10.0 ** raw <= x).mean() for x in grid], 1e-5),
                color=line.get_color(), linestyle=":", label=f"{float(hours):,.0f} h, Poisson")
    ax.plot(grid, grid, color="grey", linestyle="--", label="observed = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1.5)
    ax.set_xlabel("predicted: expected chance matches per query (E)")
    ax.set_ylabel("observed: share of null queries with best E <= x")
    ax.set_title("Audio score calibration (never-registered queries)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    readable_log_axis(ax)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "calibration.png")]
