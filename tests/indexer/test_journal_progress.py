"""The resume journal's crash tolerance."""

from __future__ import annotations

import json

from nanhu.indexer.journal import Journal


def _file(path: str, ref_id: str) -> dict:
    return {"path": path, "size": 10, "mtime_ns": 5, "id": ref_id, "digest": f"d-{ref_id}"}


def test_a_torn_last_line_is_ignored_and_the_next_run_appends_cleanly(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.start("/src", "/catalog")
    journal.committed(1, [_file("/src/a.wav", "a")])
    journal.close()
    with open(tmp_path / "j.jsonl", "ab") as handle:  # a crash in the middle of a line
        handle.write(b'{"event":"commit","generation":2,"files":[{"path":"/src/b.w')
    state = Journal(tmp_path / "j.jsonl").load("/src")
    assert state.committed == {("/src/a.wav", 10, 5): ("a", "d-a")}
    again = Journal(tmp_path / "j.jsonl")
    again.start("/src", "/catalog")
    again.committed(3, [_file("/src/c.wav", "c")])
    again.close()
    state = Journal(tmp_path / "j.jsonl").load("/src")
    assert set(state.committed.values()) == {("a", "d-a"), ("c", "d-c")}
    assert state.runs == 2 and state.completed_runs == 0
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "nanhu-ingest-journal", "version": 1}


def test_only_runs_over_the_same_source_are_loaded(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.start("/one", "/catalog")
    journal.committed(1, [_file("/one/a.wav", "a")])
    journal.end("/one", {})
    journal.start("/two", "/catalog")
    journal.committed(2, [_file("/two/b.wav", "b")])
    journal.close()
    assert list(Journal(tmp_path / "j.jsonl").load("/two").committed.values()) == [("b", "d-b")]
    one = Journal(tmp_path / "j.jsonl").load("/one")
    assert list(one.committed.values()) == [("a", "d-a")] and one.completed_runs == 1


def test_a_foreign_file_is_not_trusted(tmp_path):
    (tmp_path / "j.jsonl").write_text('{"format": "something-else", "version": 9}\n')
    assert Journal(tmp_path / "j.jsonl").load().committed == {}
