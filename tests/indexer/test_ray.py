"""The Ray path on a local Ray started by the test: the same catalog as the local path."""

from __future__ import annotations

import pytest

from nanhu.cli import main

# Not skipped when Ray is missing: `make test` installs the ray extra, so a missing Ray is a
# broken setup, and a skip would leave the Ray path untested without anyone noticing. Without
# the extra, deselect these on purpose: pytest -m "not ray".
pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray():
    """A private two-CPU Ray in this process; the ingest uses it as it finds it initialised."""
    try:
        import ray
    except ImportError:
        pytest.fail("Ray is not installed: pip install -e '.[dev,ray]' (make test does), or "
                    "deselect the Ray tests with -m 'not ray'", pytrace=False)
    if ray.is_initialized():
        pytest.fail("another test left Ray running in this process", pytrace=False)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_and_local_paths_build_the_same_catalog_bit_for_bit(tmp_path, clip_bank, helpers,
                                                                 local_ray):
    rows = [[clip, f"ref-{i}"] for i, clip in enumerate(clip_bank[:6])]
    rows.append([clip_bank[0], "ref-0-again"])  # same content: a skipped duplicate either way
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id"], rows)
    assert main(["ingest", "--catalog", str(tmp_path / "local"), "--workers", "2", "--report",
                 str(tmp_path / "local.jsonl"), str(manifest)]) == 0
    assert main(["ingest", "--catalog", str(tmp_path / "ray"), "--ray", "auto", "--batch", "4",
                 "--report", str(tmp_path / "ray.jsonl"), str(manifest)]) == 0
    local = helpers.catalog_contents(tmp_path / "local")
    on_ray = helpers.catalog_contents(tmp_path / "ray")
    assert local["postings"] > 0 and len(local["refs"]) == 6
    assert on_ray == local
    statuses = {r["id"]: r["status"] for r in helpers.read_report(tmp_path / "ray.jsonl")}
    assert statuses["ref-0-again"] == "skipped-duplicate"


def test_ray_reports_bad_files_like_the_local_path(tmp_path, clip_bank, helpers, local_ray):
    (tmp_path / "broken.wav").write_bytes(b"RIFF" + bytes(200))
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id"],
                                 [[clip_bank[0], "good"], [tmp_path / "broken.wav", "broken"]])
    assert main(["ingest", "--catalog", str(tmp_path / "ray"), "--ray", "auto", "--report",
                 str(tmp_path / "r.jsonl"), str(manifest)]) == 10
    rows = {r["id"]: r for r in helpers.read_report(tmp_path / "r.jsonl")}
    assert rows["good"]["status"] == "registered" and rows["broken"]["status"] == "failed"
