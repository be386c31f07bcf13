"""`nanhu ingest` into a catalog screens each work for reference conflicts: against what the
catalog holds and against the earlier works of the same batch."""

from __future__ import annotations

from nanhu.benchmarks.synth import music_like, write_audio
from nanhu.cli import main
from nanhu.engine.catalog import Catalog

RATE = 22050


def test_ingest_finds_conflicts_within_a_batch_and_against_the_catalog(tmp_path, helpers):
    song = music_like(20.0, seed=731, sample_rate=RATE)
    files = {name: write_audio(tmp_path / f"{name}.wav", samples, RATE) for name, samples in (
        ("song", song), ("cut", song[4 * RATE : 12 * RATE]), ("other", music_like(
            10.0, seed=732, sample_rate=RATE)), ("late", song[10 * RATE : 18 * RATE]))}
    catalog = tmp_path / "catalog"
    batch = helpers.write_csv(tmp_path / "a.csv", ["path", "id", "owner"], [
        [files["song"], "song", "label-a"], [files["cut"], "cut", "label-b"],
        [files["other"], "other", "label-b"]])
    assert main(["ingest", "--catalog", str(catalog), "--workers", "1", str(batch)]) == 0
    later = helpers.write_csv(tmp_path / "b.csv", ["path", "id", "owner"],
                              [[files["late"], "late", "label-a"]])
    assert main(["ingest", "--catalog", str(catalog), "--workers", "1", str(later)]) == 0
    with Catalog(catalog) as reader:
        found = {(c.reference.ref_id, c.other.ref_id): c.kind
                 for c in reader.conflicts(include_resolved=True)}
    assert found[("cut", "song")] == "conflict"  # same batch, another owner: held
    assert found[("late", "song")] == "same-owner"  # a later run, the same owner: allowed
    assert not any("other" in pair for pair in found)
