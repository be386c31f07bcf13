"""One namespace: the top-level folders install as ``nanhu.engine``, ``nanhu.server``, ... (a
wheel, built and installed into a fresh virtual environment), resolve to the folders in a
checkout, and ``nanhu --version`` / ``python -m nanhu --version`` say what this installation
writes and reads."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import nanhu
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.fingerprint import FORMAT_VERSION as FP_FORMAT_VERSION
from nanhu.engine.fingerprint import READABLE_VERSIONS
from nanhu.engine.store.catalog_schema import (
    COMPACT_FORMAT_VERSION,
    FORMAT_VERSION,
    LOCAL_FORMAT_VERSION,
    META_VERSION,
    PEAKS_FORMAT_VERSION,
)
from nanhu.engine.video.params import VideoParams

ROOT = Path(__file__).resolve().parents[1]
#: the design card's folders: packages of the namespace, never top-level packages of their own
FOLDERS = ("engine", "server", "proto", "indexer", "benchmarks")
#: a module of each folder that pulls in its part of the tree (generated stubs included)
PROBES = ("nanhu.engine.catalog", "nanhu.server.app", "nanhu.indexer.ingest",
          "nanhu.proto.gen.nanhu.v1.nanhu_pb2_grpc", "nanhu.benchmarks.cli", "nanhu.cli")
#: what a build leaves behind or never needs; the rest of the checkout goes to the build
_NOT_BUILT = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                    "bench-out", "tests", "docs")


def _clean_env() -> dict[str, str]:
    """The environment without what would let the checkout leak into a subprocess's imports."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _expected_version() -> list[str]:
    return [f"nanhu {nanhu.__version__}",
            f"audio fingerprints  {AudioParams().tag()}",
            f"video fingerprints  {VideoParams().tag()}",
            f"fingerprint format  1 with audio keys, {FP_FORMAT_VERSION} with a query's audio peaks "
            f"(reads {', '.join(map(str, READABLE_VERSIONS))})",
            f"catalog format      {FORMAT_VERSION}, {COMPACT_FORMAT_VERSION} with compact keyframes, "
            f"{LOCAL_FORMAT_VERSION} with local features, "
            f"{PEAKS_FORMAT_VERSION} with reference peaks (metadata schema {META_VERSION})"]


# --- the checkout ---------------------------------------------------------------------------------
def test_in_the_checkout_the_namespace_is_the_top_level_folders():
    import nanhu.engine
    import nanhu.proto.gen.nanhu.v1.nanhu_pb2 as pb
    import nanhu.server

    assert Path(nanhu.engine.__file__) == ROOT / "engine" / "__init__.py"
    assert Path(nanhu.server.__file__) == ROOT / "server" / "__init__.py"
    assert Path(pb.__file__).parent == ROOT / "proto" / "gen" / "nanhu" / "v1"


def test_the_editable_install_resolves_the_folders_from_anywhere(tmp_path):
    """Outside the checkout (no ./nanhu on sys.path) only the installed finder can map them."""
    code = "import importlib, sys; [print(importlib.import_module(m).__file__) for m in sys.argv[1:]]"
    done = subprocess.run([sys.executable, "-c", code, "nanhu", "nanhu.engine", "nanhu.server.client"],
                          cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [Path(p) for p in done.stdout.split()] == [
        ROOT / "nanhu" / "__init__.py", ROOT / "engine" / "__init__.py", ROOT / "server" / "client.py"]


# --- the docs' examples -----------------------------------------------------------------------------
#: where README and docs name modules for people to run or import
_DOCS = ("README.md", "Makefile", "Dockerfile", "docs/*.md")
_OLD_NAMES = r"(?:engine|server|proto|indexer|benchmarks|nanhu_cli)"
#: an example that still uses a top-level name (what the namespace rewrite turns into nanhu.*)
_OLD = re.compile(rf"-m\s+{_OLD_NAMES}\b|^[ \t>.]*(?:from|import)\s+{_OLD_NAMES}(?=[\s.])|"
                  rf"-c\s+[\"']\s*(?:from|import)\s+{_OLD_NAMES}(?=[\s.])", re.M)
#: ``python -m nanhu...``, ``from nanhu... import a, b``, ``import nanhu...``
_RUN = re.compile(r"python -m (nanhu(?:\.\w+)*)")
_FROM = re.compile(r"\bfrom (nanhu(?:\.\w+)*) import ((?:\w+(?:, )?)*)")


def _doc_texts() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for pattern in _DOCS
            for path in sorted(ROOT.glob(pattern))}


def test_the_docs_examples_use_the_namespace_and_name_modules_that_exist():
    texts = _doc_texts()
    assert "README.md" in texts and len(texts) > 5
    stale = {name: _OLD.findall(text) for name, text in texts.items() if _OLD.search(text)}
    assert not stale, stale
    named = 0
    for name, text in texts.items():
        for module in _RUN.findall(text):
            assert importlib.util.find_spec(module) is not None, (name, module)
            named += 1
        for module, attributes in _FROM.findall(text):
            imported = importlib.import_module(module)
            missing = [a for a in filter(None, attributes.split(", ")) if not hasattr(imported, a)]
            assert not missing, (name, module, missing)
            named += 1
    assert named >= 10  # README's library and client examples, the benchmarks' commands, ...


# --- --version ------------------------------------------------------------------------------------
def test_version_names_the_package_and_the_formats(run_cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("--version")
    assert exit_.value.code == 0
    assert capsys.readouterr().out.splitlines() == _expected_version()


def test_python_dash_m_nanhu_is_the_nanhu_command(tmp_path):
    """``python -m nanhu`` works where no console script is on PATH (the fresh environment
    below checks that both give the same answer)."""
    done = subprocess.run([sys.executable, "-m", "nanhu", "--version"], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == _expected_version()


# --- a wheel in a fresh environment ---------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would build, from a copy of the checkout (so that a stale build/
    folder cannot add files) and without build isolation (offline, seconds: the dev extra has
    setuptools)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_BUILT)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp), str(source)],
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = tmp.glob("nanhu-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_package_under_nanhu_and_nothing_beside_it(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"nanhu", f"nanhu-{nanhu.__version__}.dist-info"}
    packages = {str(p.parent.relative_to(ROOT)) for folder in FOLDERS
                for p in (ROOT / folder).rglob("__init__.py")}
    assert {f"nanhu/{p}/__init__.py" for p in packages} <= set(names)
    assert "nanhu/proto/gen/nanhu/v1/nanhu_pb2_grpc.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"nanhu-{nanhu.__version__}.dist-info/entry_points.txt")
    assert "nanhu = nanhu.cli:main" in entry_points.decode()


@pytest.mark.slow
def test_the_wheel_holds_the_package_data_pyproject_names(wheel):
    """Package data (templates, ...) is keyed by the installed name: a key "server" would match
    no package now that the folder installs as nanhu.server, and its files would be left out."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config.get("tool", {}).get("setuptools", {}).get("package-data", {})
    assert not [key for key in package_data if key != "*" and not key.startswith("nanhu")], package_data
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, patterns in package_data.items():
        if package == "*":
            continue
        folder = ROOT.joinpath(*package.split(".")[1:]) if package != "nanhu" else ROOT / "nanhu"
        for pattern in patterns:
            wanted = {"/".join(["nanhu", *p.relative_to(ROOT).parts]) if package != "nanhu"
                      else "/".join(p.relative_to(ROOT).parts) for p in folder.glob(pattern)}
            assert wanted and wanted <= names, (package, pattern, sorted(wanted - names))


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with only the wheel installed in it. Its dependencies are read
    from this test's environment through a .pth file written after the install (so that pip
    sees no nanhu there to replace), which adds the folder to sys.path but, unlike a site
    directory, runs none of its .pth files: the editable install's finder stays out."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "nanhu" / "__init__.py").is_file()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_nanhu_test_deps.pth").write_text("".join(f"{path}\n" for path in sorted(deps)))
    return venv


def _in_venv(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), *argv], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_installed_wheel_imports_as_nanhu_and_installs_no_top_level_folders(fresh_venv, tmp_path):
    code = ("import importlib, importlib.util, sys\n"
            "for name in sys.argv[1:]: print(importlib.import_module(name).__file__)\n"
            f"print([n for n in {FOLDERS!r} + ('nanhu_cli',) if importlib.util.find_spec(n)])\n")
    done = _in_venv(fresh_venv, "-c", code, *PROBES, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    *files, stray = done.stdout.splitlines()
    assert stray == "[]"  # no engine, server, ... importable: none was installed
    site = Path(files[-1]).parents[1]  # env/lib/pythonX.Y/site-packages/nanhu/cli.py
    assert site.is_relative_to(fresh_venv) and site.name == "site-packages", site
    assert all(Path(f).is_relative_to(site / "nanhu") for f in files), files
    assert not {*FOLDERS, "nanhu_cli"} & {p.name.removesuffix(".py") for p in site.iterdir()}


@pytest.mark.slow
def test_the_installed_console_script_and_module_print_the_version(fresh_venv, tmp_path):
    script = subprocess.run([str(fresh_venv / "bin" / "nanhu"), "--version"], cwd=tmp_path,
                            env=_clean_env(), capture_output=True, text=True, timeout=300)
    module = _in_venv(fresh_venv, "-m", "nanhu", "--version", cwd=tmp_path)
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout.splitlines() == module.stdout.splitlines() == _expected_version()
