"""The runs' recall and false matches at the checked-in calibration (AudioMatchParams()):
    python resummarise.py verify-null-18h.json.gz verify-null-1018h.json.gz"""
import gzip
import json
import sys

from nanhu.benchmarks.runs.audio_verify_null import summarise
from nanhu.engine.audio.align import AudioMatchParams

for path in sys.argv[1:]:
    data = json.loads(gzip.open(path).read())
    s = data["summary"]
    table = summarise(data["rows"], AudioMatchParams(), s["catalog_hours"],
                      set(s["flagged"]))["at_default"]
    print(json.dumps({"file": path, "catalog_hours": s["catalog_hours"], "table": table}))
