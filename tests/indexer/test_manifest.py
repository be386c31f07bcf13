"""Manifests and folders: parsing, the checks, and the line numbers problems are reported at."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.cli import main
from nanhu.engine.errors import InvalidArgument
from nanhu.indexer.manifest import Entry, Problem, Source, folder_id, validate


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def problems_by_line(source: Source) -> dict[int | None, str]:
    return {p.line: p.message for p in validate(source).problems}


def test_csv_problems_are_reported_each_with_its_line(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "b.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,id,title,artist\n"              # 1
        "a.wav,song-a,Song A,Ann\n"           # 2 fine
        "missing.wav,song-m,Missing,Ann\n"    # 3 missing file
        "b.wav,song-a,Again,Bob\n"            # 4 duplicate id
        "b.wav,-bad id,Bad,Bob\n"             # 5 bad id
        "b.wav,song-b,Too,many,fields\n"      # 6 unreadable row
        ",song-x,No path,\n"                  # 7 no path
        "b.wav,song-b,Song B,Bob\n"           # 8 fine
    )
    found = problems_by_line(Source(manifest))
    assert sorted(found) == [3, 4, 5, 6, 7]
    assert "missing file" in found[3]
    assert "duplicate id 'song-a'" in found[4] and "line 2" in found[4]
    assert "bad id" in found[5]
    assert "5 fields" in found[6]
    assert "no path" in found[7]
    assert validate(Source(manifest)).entries == 2


def test_jsonl_problems_are_reported_each_with_its_line(tmp_path):
    touch(tmp_path / "media" / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\n".join([
        json.dumps({"path": "media/a.wav", "id": "a", "genre": ["jazz"]}).encode(),  # 1 fine
        b'{"path": "media/a.wav", "id": ',                                           # 2 not JSON
        b'["media/a.wav"]',                                                          # 3 not object
        json.dumps({"path": "media/a.wav", "id": 7}).encode(),                       # 4 id not text
        b"",                                                                         # 5 blank: ok
        b'{"path": "media/\xff.wav"}',                                               # 6 not UTF-8
        json.dumps({"path": "media/a.wav", "id": "a"}).encode(),                     # 7 duplicate
    ]))
    found = problems_by_line(Source(manifest))
    assert sorted(found) == [2, 3, 4, 6, 7]
    assert "not JSON" in found[2] and "not a JSON object" in found[3]
    assert "must be text" in found[4] and "UTF-8" in found[6] and "duplicate" in found[7]
    entry = next(item for item in Source(manifest) if isinstance(item, Entry))
    assert entry.metadata == {"genre": ["jazz"]} and entry.path == tmp_path / "media" / "a.wav"


def test_a_header_without_path_is_one_problem_at_line_one(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ["file", "id"], [["a.wav", "a"]])
    items = list(Source(manifest))
    assert len(items) == 1 and isinstance(items[0], Problem) and items[0].line == 1
    assert "no 'path' column" in items[0].message


def test_cli_prints_every_problem_and_ingests_nothing(tmp_path, capsys):
    touch(tmp_path / "a.wav")
    manifest = write_csv(tmp_path / "m.csv", ["path", "id"],
                         [["a.wav", "a"], ["gone.wav", "g"], ["a.wav", "a"]])
    catalog = tmp_path / "catalog"
    code = main(["ingest", "--catalog", str(catalog), "--report", str(tmp_path / "r.jsonl"),
                 str(manifest)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{manifest}:3: missing file" in err
    assert f"{manifest}:4: duplicate id 'a'" in err
    assert "2 problem(s), nothing was ingested" in err
    assert not catalog.exists() and not (tmp_path / "r.jsonl").exists()


def test_folder_walk_patterns_hidden_files_and_ids(tmp_path):
    root = tmp_path / "lib"
    for name in ("Album/01 Intro.mp3", "Album/02 Song.flac", "Album/cover.jpg", "notes.txt",
                 ".hidden/x.wav", "Live/take.wav", "Live/take.tmp.wav"):
        touch(root / name)
    ids = [e.ref_id for e in Source(root)]
    assert ids == ["Album:01_Intro", "Album:02_Song", "Live:take.tmp", "Live:take"]
    ids = [e.ref_id for e in Source(root, include=["*.wav"], exclude=["*.tmp.wav"])]
    assert ids == ["Live:take"]
    ids = [e.ref_id for e in Source(root, include=["Album/*"])]
    assert ids == ["Album:01_Intro", "Album:02_Song", "Album:cover"]
    entry = next(iter(Source(root)))
    assert entry.metadata == {"source": "Album/01 Intro.mp3"} and entry.title == "01 Intro"


def test_folder_ids_that_collide_and_dangling_links_are_problems(tmp_path):
    touch(tmp_path / "song.mp3")
    touch(tmp_path / "song.flac")
    (tmp_path / "lost.wav").symlink_to(tmp_path / "nowhere.wav")
    found = {p.path: p.message for p in validate(Source(tmp_path)).problems}
    assert "dangling link" in found[str(tmp_path / "lost.wav")]
    assert "duplicate id 'song'" in found[str(tmp_path / "song.mp3")]


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="no such folder"):
        Source(tmp_path / "nope")
    with pytest.raises(InvalidArgument, match="a .csv or a .jsonl"):
        Source(touch(tmp_path / "list.txt"))
    with pytest.raises(InvalidArgument, match="apply to folders"):
        Source(write_csv(tmp_path / "m.csv", ["path"], []), include=["*.wav"])


@pytest.mark.parametrize("relative, expected", [
    ("a/b c.mp3", "a:b_c"), ("Ünïcode søng.wav", "Unicode_s_ng"), ("_x.wav", "x"), ("x.y.z.wav", "x.y.z"),
])
def test_folder_id(relative, expected):
    assert folder_id(Path(relative)) == expected


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,20}", fullmatch=True)
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r")
                | st.sampled_from(['"', ",", "\n", " "]), max_size=20)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_ids, _text, _text, st.integers(0, 2)), max_size=8,
                     unique_by=lambda r: r[0]))
def test_csv_round_trip(rows):
    """Whatever csv.writer writes (quotes, commas, newlines in cells) reads back the same."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = [touch(root / f"f{i}.wav") for i in range(3)]
        manifest = root / "m.csv"
        with open(manifest, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "title", "path", "notes"])
            for ref_id, title, notes, file in rows:
                writer.writerow([ref_id, title, files[file].name, notes])
        items = list(Source(manifest))
        assert all(isinstance(item, Entry) for item in items)
        assert [e.ref_id for e in items] == [r[0] for r in rows]
        line = 1
        for entry, (_ref_id, title, notes, file) in zip(items, rows):
            line += 1 + title.count("\n") + notes.count("\n")
            assert entry.line == line
            assert entry.title == (title.strip() or files[file].stem)
            assert entry.metadata == ({"notes": notes} if notes else {})
            assert entry.path == files[file]
