"""Nanhu: content fingerprint matching for copyright protection.

One namespace: installed, the repository's top-level folders are this package's subpackages,
``engine/`` as :mod:`nanhu.engine` and likewise ``server/``, ``indexer/``, ``benchmarks/`` and
``proto/`` (``setup.py`` maps them; an editable install maps them with setuptools' import finder),
so nothing named ``engine`` or ``server`` lands in site-packages. :mod:`nanhu.cli` is the
``nanhu`` command, which ``python -m nanhu`` runs too.
"""

#: the distribution's version (pyproject.toml reads it from here)
__version__ = "0.1.0"
