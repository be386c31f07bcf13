"""The quick audio bench (12 queries a condition) with the peak check on or off:

    python quick_bench.py OUT on|off
"""

import dataclasses
import json
import sys
from pathlib import Path

from nanhu.benchmarks.audio_bench import run_audio_bench
from nanhu.engine.audio.align import AudioMatchParams

out, verify = Path(sys.argv[1]), sys.argv[2] == "on"
summary = run_audio_bench(out, quick=True, queries_per_condition=12,
                          match=dataclasses.replace(AudioMatchParams(), verify=verify))
print(json.dumps(summary["rows"]))
