"""audio_verify_null with AudioMatchParams.stop_key_share = 0 (the stop-key cap at its floor)."""
import sys
from dataclasses import replace
from pathlib import Path

from nanhu.benchmarks.runs import audio_verify_null as avn
from nanhu.engine import matcher as matcher_module

original = matcher_module.AudioMatchParams
matcher_module.AudioMatchParams = lambda: replace(original(), stop_key_share=0.0)
print(avn.run(Path(sys.argv[1]), 25, 5004, seed=11, catalog_dir=Path(sys.argv[2]))["at_default"])
