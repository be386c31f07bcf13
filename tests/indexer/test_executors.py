"""Local worker processes die with the process that started them (issue 15: after ``kill -9``
of ``nanhu ingest`` its workers ran on for 20 minutes, holding its output)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWNER = """
import sys
from nanhu.indexer.executors import LocalExecutor
if __name__ == "__main__":
    executor = LocalExecutor(2)
    print(" ".join(str(p) for p in executor._pool._processes), flush=True)
    sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and \
        Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent_and_release_its_output(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers = [int(p) for p in owner.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    owner.send_signal(signal.SIGKILL)
    # A supervisor reading the output to its end: it ends only when no worker holds it.
    out, _ = owner.communicate(timeout=60)
    assert out == ""
    assert not [p for p in workers if _alive(p)]
