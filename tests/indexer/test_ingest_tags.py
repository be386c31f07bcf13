"""Folder ingest reads embedded tags (issue 13 item 5): title, artist and album."""

from __future__ import annotations

import av
import numpy as np

from nanhu.benchmarks.synth import music_like
from nanhu.cli import main
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media

RATE = 22050


def write_tagged(path, seed: int, tags: dict, *, codec: str):
    samples = (music_like(6.0, seed=seed, sample_rate=RATE) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        for key, value in tags.items():
            out.metadata[key] = value
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.rate = RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_fingerprints_carry_the_files_tags(tmp_path):
    flac = write_tagged(tmp_path / "a.flac", 1, {"TITLE": "Night\x07 Train", "Artist": "Ana",
                                                  "album": "Rails", "comment": "x"}, codec="flac")
    plain = write_tagged(tmp_path / "b.flac", 2, {}, codec="flac")
    assert fingerprint_media(flac, video=False).meta == {
        "tags": {"title": "Night Train", "artist": "Ana", "album": "Rails"}}
    assert fingerprint_media(plain, video=False).meta == {}


def test_a_folder_ingest_titles_works_by_their_tags_and_a_manifest_keeps_its_own(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_tagged(media / "track01.flac", 11, {"title": "Opening", "artist": "The Band",
                                               "album": "First"}, codec="flac")
    write_tagged(media / "track02.flac", 12, {}, codec="flac")
    catalog = tmp_path / "catalog"
    assert main(["ingest", "--catalog", str(catalog), str(media), "--no-video",
                 "--report", str(tmp_path / "r1.jsonl")]) == 0
    with Catalog(catalog) as c:
        refs = {r.ref_id: r for r in c.list()}
    tagged, untagged = refs["track01"], refs["track02"]
    assert tagged.title == "Opening"
    assert tagged.metadata["artist"] == "The Band" and tagged.metadata["album"] == "First"
    assert untagged.title == "track02" and "artist" not in untagged.metadata

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,id,title\n{media / 'track01.flac'},row-1,From The Sheet\n")
    other = tmp_path / "catalog2"
    assert main(["ingest", "--catalog", str(other), str(manifest), "--no-video",
                 "--report", str(tmp_path / "r2.jsonl")]) == 0
    with Catalog(other) as c:
        (row,) = c.list()
    assert row.title == "From The Sheet" and "artist" not in row.metadata
