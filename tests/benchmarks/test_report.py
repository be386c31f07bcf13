"""The benchmark report tells the truth about what ran: a smoke-test banner on ``--tiny``, labels
naming the conditions behind each figure, peers on every recall plot, n on every point and bar,
visible zeros, readable log axes, and logs (not stdout) for progress.

Every summary here is synthetic and small; no benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from nanhu.benchmarks import cli, ingest_bench, plotting, report, scale_plots
from nanhu.benchmarks.runs import video_report

RECALL = {"clean": 1.0, "mp3-128k": 1.0, "amr-nb-12.2k": 0.96, "pink-snr5": 0.88,
          "pink-snr0": 0.68, "babble-snr5": 0.8, "speed-0.9": 0.96, "speed-1.1": 0.96,
          "tempo-1.05": 0.8, "pitch+1": 0.52}
PEER = {"clean": 0.92, "mp3-128k": 0.92, "amr-nb-12.2k": 0.32, "pink-snr5": 0.44,
        "pink-snr0": 0.28, "babble-snr5": 0.48, "speed-0.9": 0.0, "speed-1.1": 0.0,
        "tempo-1.05": 0.0, "pitch+1": 0.04}


def audio_summary(conditions=tuple(RECALL), *, n: int = 25, peer: bool = True) -> dict:
    rows = [{"condition": c, "length_s": length, "queries": n, "top1_recall": RECALL[c],
             "offset_within_0.1s": 1.0, "median_speed_estimate": 1.0}
            for c in conditions for length in (5.0, 10.0)]
    summary = {"rows": rows, "negatives": {"queries": 100, "false_matches": 1},
               "build": {"references": 10, "media_hours": 18.5,
                         "fingerprint_x_realtime_per_core": 200.0,
                         "index_bytes_per_hour": 2.5 * 2**20},
               "query_match_ms_p50": 39.0, "query_match_ms_p99": 717.0}
    if peer:
        per = {"negatives": {"queries": 100, "false_matches": 3},
               "build": {"index_bytes_per_hour": 0.6 * 2**20}}
        summary["peer"] = {
            "package": "audfprint2 0.1.2", "settings": ["defaults", "tuned"],
            "by_setting": {"defaults": per, "tuned": per},
            "rows": [{"condition": c, "length_s": length, "queries": n,
                      "top1_recall": {"defaults": PEER[c], "tuned": PEER[c]}}
                     for c in conditions for length in (5.0, 10.0)]}
    return summary


def video_summary(recalls: dict[str, tuple], *, n: int = 30) -> dict:
    """``recalls``: attack -> (video only, fused, vPDQ, vPDQ 5 fps), None where not measured."""
    rows = [{"attack": attack, "length_s": None, "queries": n, "recall_video": v,
             "recall_fused": f, "recall_pdq": p, "recall_pdq_5fps": p5}
            for attack, (v, f, p, p5) in recalls.items()]
    return {"config": {"attacks": list(recalls), "clips_per_attack": {"5": n // 2, "10": n // 2}},
            "rows": rows}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save, kept open for the test to look at."""
    kept: dict[str, object] = {}

    def keep(fig, path: Path) -> str:
        kept[Path(path).name] = fig
        return Path(path).name

    for module in (report, scale_plots, plotting):
        monkeypatch.setattr(module, "save_figure", keep)
    yield kept
    plt = plotting.pyplot()
    for fig in kept.values():
        plt.close(fig)


# --- the banner -------------------------------------------------------------------------------
def test_a_tiny_report_opens_with_the_smoke_test_banner_and_a_real_one_does_not(tmp_path):
    path = report.write_report(tmp_path / "tiny", {"audio": "## Audio\n\nx\n"}, {"audio": {}},
                               "nanhu bench all --tiny", size="tiny")
    lines = path.read_text().splitlines()
    assert lines[0] == "# Nanhu benchmark report"
    assert lines[2].startswith("> **Smoke test, not a measurement.**")
    assert lines[3] == ""  # the quote ends before what follows (no lazy continuation)
    assert path.read_text().index("Smoke test") < path.read_text().index("Machine:")
    raw = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert raw["smoke_test"].startswith("Smoke test, not a measurement.") and raw["audio"] == {}
    quick = report.write_report(tmp_path / "quick", {"audio": "## Audio\n"}, {"audio": {}},
                                "nanhu bench all --quick", size="quick")
    assert "Smoke test" not in quick.read_text()
    assert "smoke_test" not in json.loads((tmp_path / "quick" / "results.json").read_text())


def _bench_args(tmp_path: Path, *, tiny: bool = False) -> argparse.Namespace:
    return argparse.Namespace(kind="server", tiny=tiny, quick=False, out=tmp_path, seed=0,
                              queries=None, scale_hours=None)


def test_bench_logs_progress_at_info_on_stderr_and_prints_nothing(tmp_path, monkeypatch, capsys,
                                                                 caplog):
    from nanhu.benchmarks.corpus import tiny

    monkeypatch.setenv("NANHU_CACHE", str(tmp_path / "unused"))  # restored after the test
    monkeypatch.setattr(tiny, "build_tiny_corpora", lambda cache, seed: None)

    def section(out, size, seed, args):
        return "## Fine\n\nmeasured\n", {"value": 1}

    monkeypatch.setattr(cli, "RUNS", dict.fromkeys(cli.KINDS, section))
    monkeypatch.setattr(cli, "_corpus_manifests", lambda raw: {})
    monkeypatch.setattr(scale_plots, "headline_table", lambda raw: "| measure | Nanhu | peer |\n")
    caplog.set_level(logging.INFO, logger="nanhu.benchmarks")
    assert cli.cmd_bench(_bench_args(tmp_path, tiny=True)) == 0
    assert capsys.readouterr().out == ""
    said = [r for r in caplog.records if r.name == "nanhu.benchmarks.cli"]
    assert said and all(r.levelno == logging.INFO for r in said)
    assert "tiny (generated media" in said[0].getMessage()
    assert said[-1].getMessage() == f"bench: wrote {tmp_path / 'report.md'}"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("> **Smoke test")  # the table alone keeps its warning
    assert summary in (tmp_path / "report.md").read_text()


def test_the_ingest_section_logs_its_runs_instead_of_printing_json(tmp_path, monkeypatch, capsys,
                                                                   caplog):
    def fake_run(source, workdir, *, workers, ray=None, batch=200):
        return {"executor": "local", "workers": workers, "wall_s": 1.0,
                "media_h_per_h": 100.0 * workers, "media_h_per_h_after_startup": 110.0 * workers,
                "projected_media_h_per_h_idle_cores": 120.0 * workers}

    monkeypatch.setattr(ingest_bench, "run_ingest", fake_run)
    caplog.set_level(logging.INFO, logger="nanhu.benchmarks")
    results = ingest_bench.run_ingest_bench(tmp_path / "out", cache=tmp_path, corpus=tmp_path,
                                            short=0, workers=(1, 2))
    assert results["speedup_2_vs_1"] == 2.0
    assert capsys.readouterr().out == ""
    logged = [r.getMessage() for r in caplog.records if r.name == "nanhu.benchmarks.ingest_bench"]
    assert len(logged) == 2 and all(m.startswith("ingest bench: {") for m in logged)


# --- the summary's labels ---------------------------------------------------------------------
def _labels(table: str) -> list[str]:
    return [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]


def test_summary_labels_name_the_conditions_and_attacks_that_ran_and_their_n():
    audio = audio_summary(["clean", "pink-snr5", "speed-1.1"], n=1, peer=False)
    video = video_summary({"360p": (1.0, 1.0, None, None), "hflip": (0.0, 1.0, None, None)}, n=2)
    video.update(false_matches={"fused": {"queries": 2, "queries_with_false_match": 0}},
                 speed={"ratio_median": 1.0}, bytes_per_hour={"video": 2**20},
                 build={"media_hours": 1.0})
    labels = _labels(scale_plots.headline_table({"audio": audio, "video": video}))
    assert labels[:3] == [
        "audio 5 s, clean and codecs: clean; 1 of 3 (mean top-1 recall, n=1)",
        "audio 5 s, pink noise: pink-snr5; 1 of 2 (mean top-1 recall, n=1)",
        "audio 5 s, speed: speed-1.1; 1 of 2 (mean top-1 recall, n=1)"]
    assert not any("tempo" in label or "pitch" in label for label in labels)
    assert "video, mild attacks: 360p; 1 of 12 (mean top-1 recall, fused / video only, n=2)" in labels
    assert "video, hard attacks: hflip; 1 of 7 (mean top-1 recall, fused / video only, n=2)" in labels
    ran = {"clean", "pink-snr5", "speed-1.1", "360p", "hflip"}
    groups = [*scale_plots.AUDIO_GROUPS, *scale_plots.VIDEO_GROUPS]
    absent = {name for _, members in groups for name in members} - ran
    assert not [name for name in absent if name in " ".join(labels)]


def test_a_fully_run_group_lists_every_member_and_the_peer_cell_its_own_conditions():
    table = scale_plots.headline_table({"audio": audio_summary()})
    row = next(line for line in table.splitlines() if "clean and codecs" in line)
    assert row.startswith("| audio 5 s, clean and codecs: clean, mp3-128k, amr-nb-12.2k "
                          "(mean top-1 recall, n=75) | 99 % | audfprint defaults 72 %, tuned 72 % |")


# --- recall plots: peers, n, intervals --------------------------------------------------------
def _legend(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_audio_recall_plots_draw_audfprint_beside_nanhu_with_n_and_intervals(tmp_path, figures):
    assert report.audio_plots(audio_summary(), tmp_path) == ["recall-vs-snr.png",
                                                             "recall-vs-speed.png"]
    for name, fig in figures.items():
        labels = _legend(fig)
        systems = {label.split(",")[0] for label in labels}
        assert systems == {"Nanhu", "audfprint defaults", "audfprint tuned"}, name
        assert all(label.endswith("(n=25 each)") for label in labels), labels
        assert "audfprint" in fig._suptitle.get_text()
        for ax in fig.axes:
            bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
            assert bars and all(c.has_yerr for c in bars)  # every line has its intervals
            low, high = ax.get_ylim()
            assert low < 0 < 100 < high  # 0 % and 100 % points are not cut by the frame


def test_audio_plots_say_when_the_peer_did_not_run_and_skip_plots_without_data(tmp_path, figures):
    assert report.audio_plots(audio_summary(["clean", "pink-snr5"], n=1, peer=False),
                              tmp_path) == ["recall-vs-snr.png"]
    fig = figures["recall-vs-snr.png"]
    assert "audfprint peer did not run" in fig._suptitle.get_text()
    assert _legend(fig) == ["Nanhu, pink noise (n=1 each)"]


def test_video_bars_state_n_show_intervals_zeros_and_what_was_not_measured(tmp_path, figures):
    summary = video_summary({"360p": (1.0, 1.0, 0.9, 0.95), "hflip": (0.0, 0.8, 0.0, None)})
    assert video_report.video_plots(summary, tmp_path) == ["video-recall-per-attack.png"]
    ax = figures["video-recall-per-attack.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["360p (n=30)", "hflip (n=30)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Nanhu video only", "Nanhu fused", "vPDQ (PDQ 1 fps)", "vPDQ, refs at 5 fps"]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("0") == 2 and texts.count("n/a") == 1
    stubs = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"
             and all(abs(y) < 1e-9 for seg in c.get_segments() for _, y in seg)]
    assert len(stubs) == 2  # a coloured stub at 0 for each bar of 0
    intervals = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert sum(len(c.lines[2][0].get_segments()) for c in intervals) == 7  # every measured bar


def test_a_video_plot_without_vpdq_says_so(tmp_path, figures):
    summary = video_summary({"360p": (1.0, 1.0, None, None)})
    video_report.video_plots(summary, tmp_path)
    ax = figures["video-recall-per-attack.png"].axes[0]
    assert "vPDQ did not run" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Nanhu video only", "Nanhu fused"]


def test_wilson_intervals():
    assert plotting.wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert plotting.wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    low, high = plotting.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert plotting.wilson_interval(0, 0) == (0.0, 1.0)
    assert plotting.recall_error(1.0, 1)[1] == 0  # nothing above 100 %


# --- log axes ---------------------------------------------------------------------------------
def _tick_labels(fig) -> list[tuple[object, list]]:
    """Per log axis: the tick labels drawn inside its view, with their boxes on the canvas."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            low, high = sorted(axis.get_view_interval())
            drawn = [(tick.label1.get_text(), tick.label1.get_window_extent(renderer))
                     for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                     if tick.label1.get_visible() and tick.label1.get_text()
                     and low * 0.999 <= tick.get_loc() <= high * 1.001]
            out.append((axis, drawn))
    return out


def _assert_readable(fig) -> None:
    axes = _tick_labels(fig)
    assert axes
    for _axis, drawn in axes:
        texts = [text for text, _ in drawn]
        assert len(texts) >= 2, texts
        assert not any("$" in t or "\\times" in t or "10^" in t for t in texts), texts
        boxes = [box for _, box in drawn]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (texts, a, b)


def test_latency_axes_have_plain_ticks_that_do_not_collide(tmp_path, figures):
    raw = {"scale": {"audio": [  # 18.5 to 219 hours: matplotlib's own labels collide here
        {"hours": 18.5, "match_ms_p50": 39.0, "match_ms_p99": 717.0, "queries": 8, "negatives": 8},
        {"hours": 38.0, "match_ms_p50": 42.0, "match_ms_p99": 97.0, "queries": 8, "negatives": 8},
        {"hours": 219.0, "match_ms_p50": 252.0, "match_ms_p99": 438.0, "queries": 8,
         "negatives": 8}]},
        "video": {"latency": {"match_video_ms_p50": 13.0, "match_video_ms_p99": 14.5},
                  "build": {"keyframes": 4_000}, "rows": [{"length_s": None, "queries": 30}],
                  "scale": {"keyframes": 100_000, "queries": 40,
                            "hnsw": {"latency_ms_p50": 14.0, "latency_ms_p99": 15.0}}}}
    assert scale_plots.latency_vs_size_plot(raw, tmp_path) == ["latency-vs-catalog-size.png"]
    fig = figures["latency-vs-catalog-size.png"]
    _assert_readable(fig)  # including the video panel's 13-15 ms, less than a decade
    # each point says how many queries it timed: in the legend when a series' points agree,
    # at the points when they differ (the video corpus' 30 positives, the 40 scale queries)
    legend = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "audio, audio-v3 (hours of audio) p50, n=16" in legend
    assert "video, HNSW (keyframes) p50, n at each point" in legend
    assert {t.get_text() for t in fig.axes[1].texts} == {"n=30", "n=40"}


def test_wide_log_axes_keep_to_a_few_labels(tmp_path, figures):
    null = {"2.0": [-12.0, -6.0, -3.0, -1.0, 0.0, -2.5, -0.5, -8.0]}
    scale_plots.calibration_plot(null, tmp_path)
    _assert_readable(figures["calibration.png"])
    scale_plots.index_size_plot({"audio": audio_summary()}, tmp_path)
    _assert_readable(figures["index-bytes-per-hour.png"])


def test_plain_numbers():
    assert [plotting.plain_number(v) for v in (0.02, 0.5, 5, 20, 3000, 40_000, 2_000_000)] == [
        "0.02", "0.5", "5", "20", "3,000", "40k", "2M"]
