"""Run a script with the base tree's nanhu (/tmp/basepkg) instead of the editable install."""
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                    and "editable" not in repr(f).lower()]
for k in [k for k in sys.modules if k == "nanhu" or k.startswith("nanhu.")]:
    del sys.modules[k]
sys.path.insert(0, "/tmp/basepkg")
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
