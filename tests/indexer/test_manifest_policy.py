"""Policy columns of an ingest manifest: validated with the rest of the row (line numbers), never
kept as metadata, and registered with the work."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.cli import main
from nanhu.engine.catalog import Catalog
from nanhu.engine.policy import ACTIONS, MODALITIES, Policy
from nanhu.indexer.manifest import Entry, Source, policy_fields, validate

HEADER = ["path", "id", "policy", "policy_modality", "policy_min_match_s", "policy_min_upload_share",
          "policy_min_reference_share", "policy_exclude", "policy_disabled"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def problems_by_line(source: Source) -> dict[int | None, str]:
    return {p.line: p.message for p in validate(source).problems}


def test_policy_columns_become_the_works_policy(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    manifest = write_csv(tmp_path / "m.csv", HEADER + ["isrc"], [
        ["a.wav", "a", "Block", "audio", "10", "0.5", "", "0-12.5; 30-40", "no", "GB-1"],
        ["a.wav", "b", "", "", "", "", "", "", "", ""],
        ["a.wav", "c", "review", "", "", "", "0.2", "", "yes", ""],
    ])
    a, b, c = (item for item in Source(manifest))
    assert a.policy == Policy("block", "audio", 10, 0.5, 0, ((0, 12.5), (30, 40))).to_dict()
    assert a.metadata == {"isrc": "GB-1"}  # policy columns are not metadata
    assert b.policy == {} and b.metadata == {}
    assert c.policy == Policy("review", min_reference_share=0.2, enabled=False).to_dict()


def test_bad_policy_cells_are_problems_at_their_lines(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    blank = [""] * 6
    manifest = write_csv(tmp_path / "m.csv", HEADER, [
        ["a.wav", "ok", "track", *blank],                                   # 2 fine
        ["a.wav", "p3", "blok", *blank],                                    # 3 not an action
        ["a.wav", "p4", "x" * 5000, *blank],                                # 4 a 5,000-char label
        ["a.wav", "p5", "block", "smell", "", "", "", "", ""],              # 5 modality
        ["a.wav", "p6", "block", "", "-1", "", "", "", ""],                 # 6 seconds
        ["a.wav", "p7", "block", "", "", "1.5", "", "", ""],                # 7 share
        ["a.wav", "p8", "block", "", "", "", "", "12", ""],                 # 8 range
        ["a.wav", "p9", "block", "", "", "", "", "", "maybe"],              # 9 flag
        ["a.wav", "p10", "", "", "5", "", "", "", ""],                      # 10 no action
    ])
    found = problems_by_line(Source(manifest))
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert found[3] == "policy: action 'blok' is not one of block, monetize, track, review"
    assert "is not one of block, monetize, track, review" in found[4] and len(found[4]) < 200
    assert found[5].startswith("policy_modality: modality 'smell' is not one of audio, video")
    assert found[6].startswith("policy_min_match_s: ") and "out of range" in found[6]
    assert found[7].startswith("policy_min_upload_share: ") and "out of range" in found[7]
    assert found[8] == "policy_exclude: excluded range '12' is not START-END in seconds (e.g. 0-12.5)"
    assert found[9] == "policy_disabled: value 'maybe' is not true or false"
    assert found[10].startswith("policy_min_match_s without a 'policy' column")
    assert validate(Source(manifest)).entries == 1


def test_an_unknown_policy_column_is_refused_not_kept_as_metadata(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    manifest = write_csv(tmp_path / "m.csv", ["path", "policy", "policy_min_len"], [["a.wav", "block", "5"]])
    (problem,) = list(Source(manifest))
    assert problem.line == 1 and "unknown policy column(s) 'policy_min_len'" in problem.message
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"path": "a.wav", "policy": "block", "policy_action": "x"}) + "\n")
    (problem,) = list(Source(jsonl))
    assert problem.line == 1 and "'policy_action'" in problem.message


def test_jsonl_policy_values_may_be_json_types(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in [
        {"path": "a.wav", "id": "a", "policy": "monetize", "policy_min_match_s": 7.5,
         "policy_exclude": [[0, 3], [10, 12]], "policy_disabled": True},
        {"path": "a.wav", "id": "b", "policy": "block", "policy_min_upload_share": "lots"},
    ]) + "\n")
    entry, problem = list(Source(manifest))
    assert entry.policy == Policy("monetize", min_match_s=7.5, excluded_ranges=((0, 3), (10, 12)),
                                  enabled=False).to_dict()
    assert problem.line == 2 and "policy_min_upload_share: " in problem.message


_cells = st.fixed_dictionaries({
    "policy": st.sampled_from(ACTIONS + tuple(a.upper() for a in ACTIONS)),
    "policy_modality": st.sampled_from(("",) + MODALITIES),
    "policy_min_match_s": st.sampled_from(["", "0", "4.5", "30"]),
    "policy_min_upload_share": st.sampled_from(["", "0", "0.25", "1"]),
    "policy_exclude": st.sampled_from(["", "0-10", "5-6;1-2", "0-1,3-4"]),
    "policy_disabled": st.sampled_from(["", "true", "False", "1", "no"]),
})


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_cells, min_size=1, max_size=5), bad_at=st.integers(0, 4),
       bad=st.sampled_from(["blok", "delete", "monitor", "b l o c k"]))
def test_valid_cells_read_back_and_a_bad_action_is_reported_at_its_line(rows, bad_at, bad):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.wav").write_bytes(b"x")
        columns = list(rows[0])
        table = [["a.wav", f"r{i}", *[row[c] for c in columns]] for i, row in enumerate(rows)]
        bad_row = min(bad_at, len(rows) - 1)
        table[bad_row][2 + columns.index("policy")] = bad
        items = list(Source(write_csv(root / "m.csv", ["path", "id", *columns], table)))
        for index, (item, row) in enumerate(zip(items, rows)):
            if index == bad_row:
                assert item.line == index + 2 and "is not one of block, monetize" in item.message
                continue
            assert isinstance(item, Entry) and item.line == index + 2
            assert item.policy == policy_fields(row) and item.policy["action"] == row["policy"].lower()


def test_ingest_registers_each_work_with_its_policy(tmp_path, clip_bank, capsys):
    media = tmp_path / "media"
    media.mkdir()
    for clip in clip_bank[:2]:
        shutil.copy(clip, media)
    manifest = write_csv(tmp_path / "m.csv", ["path", "id", "owner", "policy", "policy_exclude"], [
        ["media/clip00.wav", "c0", "label-a", "block", "0-1"],
        ["media/clip01.wav", "c1", "label-a", "", ""],
    ])
    catalog = tmp_path / "catalog"
    assert main(["ingest", "--catalog", str(catalog), "--workers", "1", "--report",
                 str(tmp_path / "r.jsonl"), str(manifest)]) == 0
    with Catalog(catalog) as opened:
        assert opened.get("c0").match_policy == Policy("block", excluded_ranges=((0, 1),))
        assert opened.get("c0").metadata == {}
        assert opened.get("c1").match_policy is None
    bad = write_csv(tmp_path / "bad.csv", ["path", "id", "policy"], [["media/clip00.wav", "x", "blok"]])
    assert main(["ingest", "--catalog", str(tmp_path / "other"), "--report", str(tmp_path / "r2.jsonl"),
                 str(bad)]) == 2
    assert f"{bad}:2: policy: action 'blok' is not one of" in capsys.readouterr().err
