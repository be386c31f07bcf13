"""``nanhu cluster`` and a cluster catalog through the ordinary commands: init, ingest, status,
query, add-shards, rebalance (shards opened in process; tests/server/test_cluster_ray.py serves
them on Ray)."""

from __future__ import annotations

import shutil

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.layout import ClusterLayout
from nanhu.engine.cluster.placement import shard_of


def test_a_cluster_is_made_filled_queried_grown_and_rebalanced(tmp_path, run_cli, song_files,
                                                               kit, songs):
    folder = tmp_path / "music"
    folder.mkdir()
    for ref_id, path in song_files.items():
        shutil.copy(path, folder / f"{ref_id}{path.suffix}")
    root = tmp_path / "cluster"
    assert run_cli("cluster", "init", root, "--shards", "2").code == 0
    done = run_cli("ingest", "--catalog", root, "--report", tmp_path / "report.jsonl", "--json",
                   folder)
    assert done.code == 0, done.err
    assert done.json_lines[-1]["registered"] == 4
    assert (root / "ingest-journal.jsonl").is_file()  # the journal lives with the cluster
    status = run_cli("cluster", "status", root, "--json").json_lines[0]
    assert status["references"] == 4 and status["misplaced"] == 0
    assert sum(s["references"] for s in status["per_shard"]) == 4
    clip = kit.write_clip("cluster-q.mp3", kit.excerpt(songs["song-2"], 10.0, 18.0))
    answer = run_cli("query", "--catalog", root, "--json", clip)
    assert answer.code == 0 and answer.json_lines[0]["matches"][0]["reference_id"] == "song-2"

    assert run_cli("cluster", "add-shards", root, "2").code == 0
    status = run_cli("cluster", "status", root, "--json").json_lines[0]
    assert status["shards"] == 4 and status["rebalance_due"]
    moved = run_cli("cluster", "rebalance", root, "--json")
    assert moved.code == 0
    assert moved.json_lines[-1]["moved"] == status["misplaced"]
    layout = ClusterLayout.read(root)
    assert layout.rebalance is None
    for shard in range(4):
        with Catalog(layout.shard_dir(shard)) as catalog:
            assert all(shard_of(r.ref_id, 4) == shard for r in catalog.list())
    answer = run_cli("query", "--catalog", root, "--json", clip)
    assert answer.json_lines[0]["matches"][0]["reference_id"] == "song-2"


def test_cluster_commands_explain_a_wrong_directory(tmp_path, run_cli):
    result = run_cli("cluster", "status", tmp_path / "nothing")
    assert result.code != 0 and "no cluster catalog here" in result.err
    assert run_cli("cluster", "init", tmp_path / "c", "--shards", "0").code != 0
