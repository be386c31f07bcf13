"""Which keyframes get local features, taken while the sampler decodes
(:class:`engine.video.sampling.KeyframeSampler` offers it every sampled frame).

References: a keyframe is described when its 64x64 frame has changed by ``change_levels``
from the last described one (a cut, or a pan or zoom gone far enough), is steady (within
``stable_levels`` of the frame sampled before it: not inside a dissolve or a fade), has
contrast (``min_contrast``), and the byte budget allows: a bucket refills at
``bytes_per_hour`` / 3600 bytes a second of presentation time and holds ``bucket_keyframes``
keyframes (it starts with one), so a reference never keeps more than its budget an hour (plus
one keyframe), however often it cuts. Queries: a frame every ``query_every_s``, as shown and
mirrored, thinned to every other one (and the step doubled) whenever ``max_query_frames`` are
held, so a long upload's features stay bounded. Only described frames are scaled to the detail
size, once each.
"""

from __future__ import annotations

import numpy as np
from av.video.reformatter import VideoReformatter

from nanhu.engine.video.local import (
    LocalFeatures,
    LocalParams,
    describe,
    detail_shape,
    empty_features,
)


class LocalCollector:
    """ORB features of the sampled frames chosen as the module docstring says."""

    def __init__(self, params: LocalParams | None = None, *, query: bool = False) -> None:
        self.params = params or LocalParams()
        self.query = query
        self._scaler = VideoReformatter()
        self._size: tuple[int, int] | None = None
        self._last_small: np.ndarray | None = None
        self._prev_small: np.ndarray | None = None
        self._capacity = self.params.bucket_keyframes * self.params.keyframe_bytes
        self._bucket = float(self.params.keyframe_bytes)
        self._last_time = 0.0
        self._next_query = 0.0
        self._query_step = self.params.query_every_s
        self._parts: list[LocalFeatures] = []

    def offer(self, time_s: float, small: np.ndarray, frame) -> None:
        """One sampled frame: its time (s), its small luma frame uint8[s, s] (what the
        global descriptor sees) and the decoded ``av.VideoFrame``."""
        p = self.params
        if self.query:
            if time_s + 1e-6 < self._next_query:
                return
            detail = self._detail(frame)
            for flipped, picture in ((False, detail), (True, detail[:, ::-1])):
                xy, desc = describe(np.ascontiguousarray(picture), p.query_features)
                self._add(time_s, xy, desc, flipped)
            if len(self._parts) > 2 * p.max_query_frames:
                # keep frames 0, 2, 4, ... with their mirrored twins (parts come in pairs)
                self._parts = [part for i, part in enumerate(self._parts) if (i // 2) % 2 == 0]
                self._query_step *= 2
            self._next_query = time_s + self._query_step
            return
        self._bucket = min(self._capacity,
                           self._bucket + (time_s - self._last_time) * p.bytes_per_hour / 3600)
        self._last_time = time_s
        small = np.asarray(small, np.float32)
        if small.shape != (64, 64):
            small = small.reshape(64, small.shape[0] // 64, 64, -1).mean(axis=(1, 3))
        previous, self._prev_small = self._prev_small, small
        if self._last_small is not None and float(
                np.mean(np.abs(small - self._last_small))) < p.change_levels:
            return
        if (self._bucket < p.keyframe_bytes or previous is None
                or float(np.mean(np.abs(small - previous))) > p.stable_levels
                or float(small.std()) < p.min_contrast):
            return
        xy, desc = describe(self._detail(frame), p.reference_features)
        if len(desc) < p.reference_features // 2:  # flat: little to verify with
            return
        self._bucket -= p.keyframe_bytes
        self._last_small = small
        self._add(time_s, xy, desc, None)

    def _detail(self, frame) -> np.ndarray:
        if self._size is None:
            self._size = detail_shape(frame.width, frame.height, self.params.detail_size)
        width, height = self._size
        out = self._scaler.reformat(frame, width=width, height=height, format="gray",
                                    interpolation="AREA")
        return out.to_ndarray().reshape(height, width)

    def _add(self, time_s: float, xy: np.ndarray, desc: np.ndarray,
             flipped: bool | None) -> None:
        self._parts.append(LocalFeatures(
            np.array([time_s], np.float32), np.array([len(desc)], np.int32), xy, desc,
            self._size or (0, 0), None if flipped is None else np.array([flipped])))

    def result(self) -> LocalFeatures:
        """The features collected so far (time order)."""
        if not self._parts:
            return empty_features(self._size or (0, 0))
        return LocalFeatures.concat(self._parts, self._size or (0, 0))
