"""The one computed part of the packaging (the metadata is in pyproject.toml): the design card's
top-level folders install as one namespace, ``engine/`` as ``nanhu.engine``, ``engine/audio/`` as
``nanhu.engine.audio`` and so on, so that nothing named ``engine`` or ``server`` lands in a user's
site-packages.

setuptools' declarative ``packages.find`` cannot put a prefix on what it finds, and a list kept by
hand in pyproject.toml would silently leave a new subpackage out of the wheel (an editable install
would still find it); so the subpackages are found here, at every build.
"""

from setuptools import find_packages, setup

#: the folders at the repository's top level that are packages of the ``nanhu`` namespace
FOLDERS = ("engine", "server", "proto", "indexer", "benchmarks")

package_dir = {"nanhu": "nanhu"} | {f"nanhu.{folder}": folder for folder in FOLDERS}
packages = find_packages(include=["nanhu", "nanhu.*"]) + [
    f"nanhu.{name}" for name in find_packages(include=[f"{folder}{tail}" for folder in FOLDERS
                                                        for tail in ("", ".*")])]

setup(packages=packages, package_dir=package_dir)
