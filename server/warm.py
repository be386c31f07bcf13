"""Imported by the worker pool's fork server (:data:`server.pool._PRELOAD`): compiles, or loads
from numba's on-disk cache, the compiled kernel every screening calls, so that forked workers
inherit it and no job pays for it.

:func:`engine.store.kernels.sort_words` sorts every query window's key words (any query
longer than about a second): its first call in a process costs ~0.3 s of CPU with numba's
cache on disk and ~0.8 s without (a fresh checkout), which a new worker's first job would
otherwise spend inside its CPU budget. The other kernels run only on lookups that found
postings, and are left to their first use.
"""

from __future__ import annotations

import numpy as np

from nanhu.engine.store.kernels import sort_words

sort_words(np.zeros(2, np.uint64), 1)
