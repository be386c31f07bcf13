"""The video baseline: Meta's PDQ per frame at 1 fps, matched with vPDQ's rule.

Hashing uses ``pdqhash`` (Python bindings of Meta's PDQ, PyPI). Frames are sampled at 1 fps:
the first decoded frame at or after each whole second, as ``vpdq.computeHash(...,
seconds_per_hash=1)`` does. Reference frames are scaled to 640x360 before hashing (PDQ
downsamples to 64x64 inside, so the hash barely depends on the input size), query frames are
hashed at their own size.

The benchmark also runs a denser variant, references hashed at 5 fps (queries still at 1 fps),
to tell a hash that does not survive an attack from a 1 fps sample that missed the reference's
frame: with camera motion, frames half a second apart can differ by more than 31 bits.

Matching is threatexchange's brute-force vPDQ rule (``vpdq_brute_matcher.match_VPDQ_hash_brute``
with its defaults): both sides are de-duplicated (identical hashes kept once) and filtered to
quality >= 50; a query frame *matches* a reference when some reference frame is within Hamming
distance 31; the query matches the reference when at least 80 % of its frames match
(``VPDQ_QUERY_MATCH_THRESHOLD_PERCENT``) and the reference-side share is >= 0 %
(``VPDQ_INDEX_MATCH_THRESHOLD_PERCENT``, i.e. no condition). A query with no frame of quality
>= 50 matches nothing. The best match is the passing reference with the highest query share
(then reference share).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

QUALITY_THRESHOLD = 50
DISTANCE_THRESHOLD = 31
QUERY_MATCH_PERCENT = 80.0
INDEX_MATCH_PERCENT = 0.0


def available() -> str | None:
    """None when ``pdqhash`` imports, else why it does not."""
    try:
        import pdqhash  # noqa: F401
    except ImportError as exc:
        return f"pdqhash is not installed ({exc}); pip install pdqhash"
    return None


@dataclass(frozen=True)
class PdqFrames:
    """PDQ hashes of sampled frames.

    hashes : ndarray [shape=(n, 32)], uint8, the 256 hash bits packed (numpy bit order)
    quality : ndarray [shape=(n,)], int32, PDQ quality 0..100
    times_s : ndarray [shape=(n,)], float32, presentation time of each frame (s)
    """

    hashes: np.ndarray
    quality: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return int(self.times_s.size)


def hash_frame(image: np.ndarray) -> tuple[np.ndarray, int]:
    """PDQ of one RGB frame (uint8 [h, w, 3]): (packed hash uint8[32], quality)."""
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(image))
    return np.packbits(np.asarray(bits, bool)), int(quality)


def hash_video(source: str | Path | bytes, *, every_s: float = 1.0,
               size: tuple[int, int] | None = None) -> PdqFrames:
    """PDQ of one frame per ``every_s`` seconds of ``source`` (a path or the file's bytes);
    frames are scaled to ``size`` (width, height) first when given."""
    target = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    hashes, quality, times = [], [], []
    next_time = 0.0
    with av.open(target) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            if t + 1e-6 < next_time:
                continue
            width, height = size or (frame.width, frame.height)
            packed, q = hash_frame(frame.to_ndarray(width=width, height=height, format="rgb24"))
            hashes.append(packed)
            quality.append(q)
            times.append(t)
            next_time = (np.floor(t / every_s + 1e-6) + 1) * every_s
    return PdqFrames(np.array(hashes, np.uint8).reshape(-1, 32), np.array(quality, np.int32),
                     np.array(times, np.float32))


def subsample(frames: PdqFrames, *, every_s: float = 1.0) -> PdqFrames:
    """The frames :func:`hash_video` would have kept at ``every_s`` (the first at or after each
    multiple of ``every_s``), taken from denser samples that include them."""
    keep, next_time = [], 0.0
    for i, t in enumerate(frames.times_s.astype(np.float64)):
        if t + 1e-6 >= next_time:
            keep.append(i)
            next_time = (np.floor(t / every_s + 1e-6) + 1) * every_s
    keep_index = np.array(keep, np.int64)
    return PdqFrames(frames.hashes[keep_index], frames.quality[keep_index],
                     frames.times_s[keep_index])


def _prepare(frames: PdqFrames) -> np.ndarray:
    """vPDQ's ``dedupe`` then ``quality_filter``: unique hashes of quality >= 50."""
    if len(frames) == 0:
        return np.zeros((0, 32), np.uint8)
    _, first = np.unique(frames.hashes, axis=0, return_index=True)
    keep = np.sort(first)
    keep = keep[frames.quality[keep] >= QUALITY_THRESHOLD]
    return frames.hashes[keep]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes: a [m, 32], b [n, 32] -> int32 [m, n]."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)


@dataclass(frozen=True)
class VpdqMatch:
    reference_id: str
    query_match_percent: float
    reference_match_percent: float


class VpdqIndex:
    """Brute-force vPDQ matching against every registered reference."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._hashes: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._owner: np.ndarray | None = None

    def add(self, reference_id: str, frames: PdqFrames) -> None:
        self._ids.append(reference_id)
        self._hashes.append(_prepare(frames))
        self._matrix = None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def frame_count(self) -> int:
        return sum(h.shape[0] for h in self._hashes)

    def _build(self) -> None:
        self._matrix = (np.concatenate(self._hashes) if self._hashes
                        else np.zeros((0, 32), np.uint8))
        self._owner = np.concatenate([np.full(h.shape[0], i, np.int64)
                                      for i, h in enumerate(self._hashes)] or [np.zeros(0, np.int64)])

    def match(self, query: PdqFrames) -> list[VpdqMatch]:
        """Every reference the query matches under the vPDQ rule, best first."""
        if self._matrix is None:
            self._build()
        hashes = _prepare(query)
        if hashes.shape[0] == 0 or self._matrix.shape[0] == 0:
            return []
        close = hamming(hashes, self._matrix) <= DISTANCE_THRESHOLD  # [m, N]
        n_refs = len(self._ids)
        # Per reference: how many query frames have a close frame in it, and how many of its
        # frames have a close query frame.
        query_hits = np.zeros((hashes.shape[0], n_refs), bool)
        rows, cols = np.nonzero(close)
        query_hits[rows, self._owner[cols]] = True
        query_share = 100.0 * query_hits.sum(axis=0) / hashes.shape[0]
        ref_frames = np.bincount(self._owner, minlength=n_refs)
        ref_hit = np.bincount(self._owner[np.flatnonzero(close.any(axis=0))], minlength=n_refs)
        ref_share = 100.0 * ref_hit / np.maximum(ref_frames, 1)
        passing = np.flatnonzero((query_share >= QUERY_MATCH_PERCENT)
                                 & (ref_share >= INDEX_MATCH_PERCENT) & (ref_frames > 0))
        out = [VpdqMatch(self._ids[i], float(query_share[i]), float(ref_share[i])) for i in passing]
        out.sort(key=lambda m: (-m.query_match_percent, -m.reference_match_percent))
        return out


def save_frames(path: Path, frames: PdqFrames) -> None:
    """Cache hashes as a plain ``.npz`` (no pickle)."""
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, hashes=frames.hashes, quality=frames.quality, times_s=frames.times_s)
    tmp.replace(path)


def load_frames(path: Path) -> PdqFrames:
    with np.load(path, allow_pickle=False) as data:
        return PdqFrames(data["hashes"], data["quality"], data["times_s"])
