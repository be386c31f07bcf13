"""Run a script with another tree's nanhu (``/tmp/basepkg``: a ``nanhu`` folder whose engine,
server, ... link to a worktree of the base commit) instead of the editable install.

    python with_base.py cpu_run.py ARGS...
"""

import runpy
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
for name in [k for k in sys.modules if k == "nanhu" or k.startswith("nanhu.")]:
    del sys.modules[name]
sys.path.insert(0, "/tmp/basepkg")
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
