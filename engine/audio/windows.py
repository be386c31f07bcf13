"""A query's audio in windows of query time, and the small array steps the matcher's looks
share: which windows a landmark is in, the seconds a window spans, its distinct keys."""

from __future__ import annotations

import numpy as np

from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.store.postings import sort_keys


def query_seconds(landmarks: Landmarks, fps: float) -> float:
    """Seconds of query audio the landmarks span (query time, whatever warp; at least 1)."""
    if not len(landmarks):
        return 1.0
    frames = landmarks.frames / landmarks.speeds.astype(np.float64)[landmarks.speed_index]
    return max(1.0, float(frames.max() - frames.min()) / fps)


def one_window(landmarks: Landmarks, window: float, overlap: float) -> bool:
    """Whether every landmark is surely in one or two adjacent windows (then the query is
    matched whole, as :func:`window_ids` would decide), from the extreme frames and speeds
    alone, with a margin for rounding: a short query skips a pass over its landmarks."""
    if not len(landmarks):
        return True
    speeds = landmarks.speeds.astype(np.float64)
    earliest = float(landmarks.frames.min()) / float(speeds.max()) * (1 - 1e-6) - 1
    latest = (float(landmarks.frames.max()) / float(speeds.min()) + overlap) * (1 + 1e-6) + 1
    return (latest // window) - (max(earliest, 0.0) // window) <= 1


def window_ids(landmarks: Landmarks, window: float, overlap: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Windows of query time each landmark is in: ``(own, ahead)``, int16[n] each.

    Window w holds query frames [w * window - overlap, (w + 1) * window): a landmark is in the
    window of its query frame and in that of its frame plus the overlap. Ids are int16 (two
    bytes a landmark) and computed in chunks, so a long query's landmarks never hold float
    copies of their frames all at once.
    """
    n = len(landmarks)
    own, ahead = np.empty(n, np.int16), np.empty(n, np.int16)
    speeds = landmarks.speeds.astype(np.float32)
    step = 1 << 22
    for lo in range(0, n, step):
        frames = landmarks.frames[lo:lo + step] / speeds[landmarks.speed_index[lo:lo + step]]
        own[lo:lo + step] = np.minimum(frames // window, 32000)
        ahead[lo:lo + step] = np.minimum((frames + overlap) // window, 32000)
    return own, ahead


def distinct_keys(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys, inverse int64[n], order int64[n]) of ``hashes`` (uint32[n]): as
    ``np.unique(hashes, return_inverse=True)``, plus the stable argsort of the inverse, all
    from one sort (:func:`engine.store.postings.sort_keys`)."""
    ordered, order = sort_keys(hashes)
    new = np.empty(ordered.size, bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    inverse = np.empty(ordered.size, np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse, order


def subset(landmarks: Landmarks, picked: np.ndarray) -> Landmarks:
    return Landmarks(landmarks.hashes[picked], landmarks.frames[picked],
                     landmarks.speed_index[picked], landmarks.speeds, landmarks.pitches)
