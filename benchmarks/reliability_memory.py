"""Memory classes of ``nanhu bench reliability``: a long upload screened against itself.

Full-length copies are what platforms most need to catch, and the issue-15 probe found a 2-hour
self-match peaking at 6.8 GB. Here an upload of ``minutes`` of generated music (5-minute pieces
of distinct seeds, 8 kHz) is registered, then screened as ``nanhu query`` and the server do
(keys made window by window), in a fresh process whose peak resident memory is the figure
(``VmHWM``: ``ru_maxrss`` would carry the parent's size over ``exec``). Passed: one match
covering the whole upload and a peak within ``limit_mb``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from nanhu.benchmarks.synth import music_like, write_audio

#: the issue's target for a 2-hour self-match
LIMIT_MB = 1536.0

_SCREEN = """
import json, resource, sys, time

def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
started = time.process_time()
fp = fingerprint_media(sys.argv[1], query=True, video=False, keys_on_demand=True)
matches = Matcher(Catalog(sys.argv[2])).match(fp)
print(json.dumps({"cpu_s": time.process_time() - started,
                  "peak_mb": peak_mb(),
                  "matches": [[m.reference_id, m.query_start_s, m.query_end_s] for m in matches]}))
"""


def long_self_match(work: Path, seed: int, minutes: int, *, limit_mb: float = LIMIT_MB) -> dict:
    """One long upload screened against its own registration; a class row with the figures."""
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.fingerprint import fingerprint_media

    pieces = [music_like(300.0, seed=seed + 500 + i, sample_rate=8000)
              for i in range(max(1, minutes // 5))]
    path = write_audio(work / "long.wav", np.concatenate(pieces), 8000)
    length_s = sum(p.size for p in pieces) / 8000
    catalog = work / "catalog"
    with Catalog(catalog, writable=True, create=True) as c:
        c.add("long", fingerprint_media(path, video=False))
        c.commit()
    done = subprocess.run([sys.executable, "-c", _SCREEN, str(path), str(catalog)],
                          capture_output=True, text=True, check=False)
    label = f"{length_s / 60:.0f}-minute self-match"
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"class": "long self-match memory", "tried": 1, "passed": 0, "failed": 1,
                "failures": [f"{label}: exit {done.returncode}: {tail[0]}"]}
    report = json.loads(done.stdout)
    matches = report["matches"]
    whole = (len(matches) == 1 and matches[0][0] == "long" and matches[0][1] < 5.0
             and matches[0][2] > length_s - 5.0)
    small = report["peak_mb"] <= limit_mb
    problems = ([] if whole else [f"{label}: matches {matches[:3]}"]) + (
        [] if small else [f"{label}: peak {report['peak_mb']:.0f} MB > {limit_mb:.0f} MB"])
    return {"class": "long self-match memory", "tried": 1, "passed": int(not problems),
            "failed": int(bool(problems)), "failures": problems,
            "upload_s": round(length_s, 1), "peak_mb": round(report["peak_mb"], 1),
            "cpu_s": round(report["cpu_s"], 1)}
