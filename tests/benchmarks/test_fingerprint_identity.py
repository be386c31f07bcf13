"""The bit-identity check: a dump compares equal to itself and names what differs."""

from __future__ import annotations

import numpy as np

from nanhu.benchmarks.fingerprint_identity import compare, main


def test_a_dump_matches_itself_and_a_changed_array_is_named(song_files, tmp_path, capsys):
    files = [str(song_files["song-0"]), str(song_files["song-1"])]
    assert main(["dump", str(tmp_path / "a"), *files]) == 0
    assert main(["dump", str(tmp_path / "b"), *files]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2/2 bit-identical"

    dumped = sorted((tmp_path / "b").glob("*.npz"))[1]
    with np.load(dumped) as arrays:
        changed = dict(arrays)
    changed["peak_prominence"] = changed["peak_prominence"] + np.float32(1e-3)
    np.savez(dumped, **changed)
    assert compare(tmp_path / "a", tmp_path / "b") == 1
    out = capsys.readouterr().out
    assert f"DIFF {dumped.name} peak_prominence" in out and "1/2 bit-identical" in out
