"""Imported by the worker pool's fork server (:data:`server.pool._PRELOAD`): compiles, or loads
from numba's on-disk cache, the compiled kernels every screening calls, so that forked workers
inherit them and no job pays for them.

:func:`engine.store.kernels.sort_words` sorts every query window's key words (any query
longer than about a second), and :mod:`engine.audio.key_kernels` makes the keys of every
fingerprinted signal: a kernel's first call in a process costs ~0.3 s of CPU with numba's
cache on disk and ~0.8 s without (a fresh checkout), which a new worker's first job would
otherwise spend inside its CPU budget. The other kernels run only on lookups that found
postings, and are left to their first use.
"""

from __future__ import annotations

import numpy as np

from nanhu.engine.audio.key_kernels import speed_triplets, warp_keys
from nanhu.engine.store.kernels import sort_words

sort_words(np.zeros(2, np.uint64), 1)
_frames = np.array([0.0, 5.0, 9.0, 14.0])
_anchor, _base = speed_triplets(_frames, np.zeros(4), 1.0, 2, 4, 127.0, 63.0, 4.0, 1.0, 16, 6.0,
                                0.15)
warp_keys(_anchor, _base, _frames, np.zeros(4), 1.0, np.zeros(1), 4.0)
