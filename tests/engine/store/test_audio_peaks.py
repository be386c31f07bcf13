"""Reference-peak segments (engine.store.audio_peaks) against their brute-force twin, their
refusal of torn and foreign files, and the catalog that writes, merges and compacts them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import CatalogCorrupt, InvalidArgument, VersionMismatch
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.store import audio_peaks
from nanhu.engine.store.audio_peaks import (
    PeakSegment,
    ReferencePeaks,
    ReferencePeaksTwin,
    merge_peak_segments,
    write_peak_segment,
)
from nanhu.engine.store.catalog_segments import TIER_FANOUT
from nanhu.engine.validate import validate_fingerprint


def random_peaks(rng: np.random.Generator, n: int, frames: int = 5_000):
    """``n`` peaks in frames 0..frames, log-frequencies on the picker's range, unsorted."""
    return rng.integers(0, frames, n), rng.uniform(-1.4, 251.5, n).astype(np.float32)


def items(seed: int, ordinals) -> list[tuple[int, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(int(o), *random_peaks(rng, int(rng.integers(0, 600)))) for o in ordinals]


def assert_same_windows(store, twin, ordinals, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for ordinal in ordinals:
        for _ in range(5):
            lo = float(rng.uniform(-50, 5_000))
            hi = lo + float(rng.uniform(0, 1_500))
            got = store.window(ordinal, lo, hi)
            want = twin.window(ordinal, lo, hi)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], atol=1e-9)
        assert (ordinal in store) == (ordinal in twin)


# --- one file ------------------------------------------------------------------------------------
def test_a_segment_gives_the_twins_windows_and_keeps_a_sixteenth_of_a_step(tmp_path):
    content = items(1, [3, 7, 8, 20, 21])
    content.append((30, np.zeros(0, np.int64), np.zeros(0, np.float32)))  # no peaks: not stored
    path = tmp_path / "a.apk"
    size = write_peak_segment(path, content)
    assert size == path.stat().st_size
    segment = PeakSegment(path)
    assert segment.ordinals.tolist() == [o for o, f, _ in content if f.size]
    store, twin = ReferencePeaks([path]), ReferencePeaksTwin(content)
    assert_same_windows(store, twin, [3, 7, 8, 20, 21, 30, 99], seed=2)
    for ordinal, frames, lf in content[:3]:  # the whole reference: every peak, to 1/32 step
        got_frames, got_lf = store.window(ordinal, 0, 10_000)
        order = np.lexsort((lf, frames))
        np.testing.assert_array_equal(np.sort(got_frames), np.sort(frames))
        assert np.abs(np.sort(got_lf) - np.sort(lf.astype(np.float64))).max() <= 1 / 32 + 1e-6
        assert got_frames.size == order.size
    assert 30 not in store and 99 not in store


def test_the_lowest_interpolated_bin_survives_storage(tmp_path):
    """The picker's lowest bin interpolated down half a bin lies about 1.45 steps below 0."""
    frames, lf = np.array([0, 1, 2]), np.array([-1.45, 0.0, 251.4], np.float32)
    write_peak_segment(tmp_path / "a.apk", [(1, frames, lf)])
    got = ReferencePeaks([tmp_path / "a.apk"]).window(1, 0, 5)[1]
    np.testing.assert_allclose(got, lf, atol=1 / 32)


def test_merging_keeps_all_but_the_dropped_and_crosses_copy_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_peaks, "_CHUNK_PEAKS", 257)  # many chunk boundaries
    first, second = items(3, range(0, 40, 2)), items(4, range(1, 41, 2))
    write_peak_segment(tmp_path / "a.apk", first)
    write_peak_segment(tmp_path / "b.apk", second)
    dropped = np.array([4, 5, 6, 39], np.int64)
    info = merge_peak_segments([tmp_path / "a.apk", tmp_path / "b.apk"], tmp_path / "m.apk",
                               drop_ordinals=dropped)
    kept = [row for row in first + second if row[0] not in set(dropped.tolist())]
    assert info["references"] == sum(1 for _, f, _ in kept if f.size)
    assert info["peaks"] == sum(f.size for _, f, _ in kept)
    assert info["bytes"] == (tmp_path / "m.apk").stat().st_size
    merged, twin = ReferencePeaks([tmp_path / "m.apk"]), ReferencePeaksTwin(kept)
    assert_same_windows(merged, twin, range(42), seed=5)


def test_torn_foreign_and_newer_files_are_refused(tmp_path):
    path = tmp_path / "a.apk"
    write_peak_segment(path, items(6, [1, 2, 3]))
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])
    with pytest.raises(CatalogCorrupt, match="torn write"):
        PeakSegment(path)
    path.write_bytes(whole[:20])
    with pytest.raises(CatalogCorrupt, match="torn write"):
        PeakSegment(path)
    table = bytearray(whole)
    table[24] ^= 0xFF  # the first table row's ordinal
    path.write_bytes(bytes(table))
    with pytest.raises(CatalogCorrupt, match="checksum"):
        PeakSegment(path)
    path.write_bytes(b"NHAX" + whole[4:])
    with pytest.raises(CatalogCorrupt, match="not a Nanhu reference-peak segment"):
        PeakSegment(path)
    path.write_bytes(whole[:4] + (9).to_bytes(4, "little") + whole[8:])
    with pytest.raises(VersionMismatch, match="format version 9 .*rebuild"):
        PeakSegment(path)


# --- the fingerprint -----------------------------------------------------------------------------
def peaked_fp(kit, seed: int, n_peaks: int = 300, duration_s: float = 60.0) -> Fingerprint:
    """A reference fingerprint of random landmarks with ``n_peaks`` random peaks in its audio."""
    rng = np.random.default_rng(seed)
    fp = kit.fingerprint(rng.integers(0, 1 << 22, 400), np.sort(rng.integers(0, 3000, 400)),
                         digest=f"digest-{seed}", duration_s=duration_s)
    frames, lf = random_peaks(rng, n_peaks, frames=int(duration_s * 31))
    order = np.argsort(frames, kind="stable")
    return dataclasses.replace(fp, reference_peaks=Peaks(
        frames[order].astype(np.int64), lf[order], np.zeros(n_peaks, np.float32)))


def test_the_fingerprint_carries_its_peaks_through_bytes(kit):
    fp = peaked_fp(kit, 1)
    back = Fingerprint.from_bytes(fp.to_bytes())
    np.testing.assert_array_equal(back.reference_peaks.frame, fp.reference_peaks.frame)
    np.testing.assert_array_equal(back.reference_peaks.log_freq, fp.reference_peaks.log_freq)
    assert Fingerprint.from_bytes(kit.fingerprint([1, 2], [0, 1], digest="d").to_bytes()
                                  ).reference_peaks is None


def test_a_media_reference_keeps_the_peaks_its_keys_came_from(song_files, reference_fps):
    from nanhu.engine.fingerprint import fingerprint_media

    name = sorted(song_files)[0]
    reference = reference_fps[name]
    peaks = reference.reference_peaks
    assert peaks is not None and len(peaks) > 5 * reference.duration_s
    assert np.all(np.diff(peaks.frame) >= 0)
    assert fingerprint_media(song_files[name], query=True).reference_peaks is None
    validate_fingerprint(reference, for_reference=True)  # what the picker makes is valid


@pytest.mark.parametrize("change, words", [
    (lambda p: Peaks(p.frame[:-1], p.log_freq, p.prominence), "one entry per peak frame"),
    (lambda p: Peaks(p.frame + 10_000, p.log_freq, p.prominence), "must lie in 0.."),
    (lambda p: Peaks(p.frame.astype(np.float64), p.log_freq, p.prominence), "integers"),
    (lambda p: Peaks(p.frame, np.where(np.arange(len(p)) == 3, np.nan, p.log_freq).astype(
        np.float32), p.prominence), "finite and within"),
    (lambda p: Peaks(p.frame, p.log_freq + 300, p.prominence), "finite and within"),
    (lambda p: Peaks(np.repeat(p.frame, 40), np.repeat(p.log_freq, 40),
                     np.repeat(p.prominence, 40)), "peaks for 60 s"),
])
def test_malformed_reference_peaks_are_refused_by_name(kit, change, words):
    fp = peaked_fp(kit, 2)
    validate_fingerprint(fp, for_reference=True)
    bad = dataclasses.replace(fp, reference_peaks=change(fp.reference_peaks))
    with pytest.raises(InvalidArgument, match="audio.peak_"):
        validate_fingerprint(bad, for_reference=True)
    with pytest.raises(InvalidArgument, match=words):
        validate_fingerprint(bad, for_reference=True)


# --- the catalog ---------------------------------------------------------------------------------
def stored(reader, ref_id: str):
    return reader.reference_peaks().window(reader.get(ref_id).ordinal, 0, 1e9)


def test_the_catalog_stores_merges_compacts_and_reopens_reference_peaks(kit, catalog_dir):
    fps = {f"ref-{i}": peaked_fp(kit, 10 + i) for i in range(TIER_FANOUT + 2)}
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("plain", kit.fingerprint([5, 6, 7], [0, 1, 2], digest="plain"))
        catalog.commit()
        assert json.loads((catalog_dir / "manifest.json").read_text())["version"] == 2
        for ref_id, fp in fps.items():  # one commit each: the small tier fills and merges
            catalog.add(ref_id, fp)
            catalog.commit()
        manifest = json.loads((catalog_dir / "manifest.json").read_text())
        assert manifest["version"] == 5
        assert len(manifest["audio_peaks"]) < len(fps)  # a tier was merged
        assert sum(e["count"] for e in manifest["audio_peaks"]) == 300 * len(fps)
        stats = catalog.stats()
        assert stats["audio_peak_bytes"] == sum(e["bytes"] for e in manifest["audio_peaks"])
    twin = None
    with Catalog(catalog_dir) as reader:
        assert reader.stats()["format_version"] == 5
        twin = ReferencePeaksTwin([(reader.get(r).ordinal, fp.reference_peaks.frame,
                                    fp.reference_peaks.log_freq) for r, fp in fps.items()])
        ordinals = [reader.get(r).ordinal for r in fps] + [reader.get("plain").ordinal]
        assert_same_windows(reader.reference_peaks(), twin, ordinals, seed=7)
        assert stored(reader, "plain")[0].size == 0
    with Catalog(catalog_dir, writable=True) as catalog:
        catalog.delete("ref-0")
        catalog.commit()
        catalog.compact()
        manifest = json.loads((catalog_dir / "manifest.json").read_text())
        assert len(manifest["audio_peaks"]) == 1
        assert manifest["audio_peaks"][0]["count"] == 300 * (len(fps) - 1)
    on_disk = {p.name for p in (catalog_dir / "audio").glob("*.apk")}
    assert on_disk == {manifest["audio_peaks"][0]["file"].split("/")[-1]}  # the old ones purged
    with Catalog(catalog_dir) as reader:
        assert_same_windows(reader.reference_peaks(), twin,
                            [reader.get(r).ordinal for r in list(fps)[1:]], seed=8)


def test_a_crash_writing_peaks_leaves_the_last_commit(kit, catalog_dir, monkeypatch):
    from nanhu.engine.store import catalog_segments

    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("a", peaked_fp(kit, 1))
        catalog.commit()
    before = kit.catalog_state(catalog_dir)

    def torn(path, rows):
        path.write_bytes(b"NHAP\x01")
        raise OSError("disk full")

    monkeypatch.setattr(catalog_segments, "write_peak_segment", torn)
    with Catalog(catalog_dir, writable=True) as catalog:
        catalog.add("b", peaked_fp(kit, 2))
        with pytest.raises(OSError, match="disk full"):
            catalog.commit()
    monkeypatch.undo()
    assert kit.catalog_state(catalog_dir) == before
    with Catalog(catalog_dir) as reader:
        assert [r.ref_id for r in reader.list()] == ["a"]
        assert stored(reader, "a")[0].size == 300


def test_a_damaged_peak_file_is_checked_repaired_and_never_stops_matching(
        catalog_dir, reference_fps, song_files, caplog):
    """Peaks are the peak check's evidence only: a torn file is reported by `check`, matching
    goes on on votes alone (with a warning), and `repair` drops the file and no reference."""
    from nanhu.engine.check import check_catalog
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.matcher import Matcher
    from nanhu.engine.repair import repair_catalog

    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for ref_id in ("song-0", "song-1"):
            catalog.add(ref_id, reference_fps[ref_id])
        catalog.commit()
        (name,) = [e["file"] for e in catalog.manifest["audio_peaks"]]
    path = catalog_dir / name
    path.write_bytes(path.read_bytes()[:-100])
    report = check_catalog(catalog_dir)
    assert not report["ok"] and any(name in p and "peak check" in p for p in report["problems"])
    query = fingerprint_media(song_files["song-1"], query=True, video=False, keys_on_demand=True)
    with Catalog(catalog_dir) as reader:
        assert [m.reference_id for m in Matcher(reader).match(query)] == ["song-1"]
    assert any(name in r.getMessage() and "votes alone" in r.getMessage() for r in caplog.records)
    fixed = repair_catalog(catalog_dir)
    assert fixed["ok"] and fixed["dropped"]["references"] == []
    assert fixed["dropped"]["segments"] == [name]
    with Catalog(catalog_dir) as reader:
        assert not reader.manifest.get("audio_peaks")
        assert sorted(r.ref_id for r in reader.list()) == ["song-0", "song-1"]
        assert [m.reference_id for m in Matcher(reader).match(query)] == ["song-1"]


def test_windows_ask_for_their_references_rows_together(tmp_path, monkeypatch):
    older, newer = items(5, [1, 2, 3]), items(6, [3, 4])  # 3 is in both: the newer file's
    write_peak_segment(tmp_path / "a.apk", older)
    write_peak_segment(tmp_path / "b.apk", newer)
    store = ReferencePeaks([tmp_path / "a.apk", tmp_path / "b.apk"])
    asked: list[tuple[str, list[int]]] = []
    monkeypatch.setenv("NANHU_PREFETCH", "1")
    monkeypatch.setattr(PeakSegment, "prefetch",
                        lambda self, rows: asked.append((self.path.name, sorted(rows.tolist()))))
    requests = [(1, 0.0, 900.0), (3, 100.0, 300.0), (4, 0.0, 50.0), (1, 2000.0, 3000.0), (9, 0, 9)]
    got = store.windows(requests)
    assert sorted(asked) == [("a.apk", [0]), ("b.apk", [0, 1])]
    twin = ReferencePeaksTwin(older[:2] + newer)
    for (ordinal, lo, hi), (frames, lf) in zip(requests, got):
        want = twin.window(ordinal, lo, hi)
        np.testing.assert_array_equal(frames, want[0])
        np.testing.assert_allclose(lf, want[1], atol=1e-9)
    monkeypatch.undo()
    monkeypatch.setenv("NANHU_PREFETCH", "1")
    for a, b in zip(got, store.windows(requests)):  # and the real prefetch changes nothing
        np.testing.assert_array_equal(a[0], b[0])
