"""A video track's fingerprint: the embeddings of its sampled frames that have content."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from nanhu.engine import stages
from nanhu.engine.media import Source, source_name
from nanhu.engine.video.embed import frame_embeddings
from nanhu.engine.video.framing import ViewParams, find_views, view_frames
from nanhu.engine.video.params import VideoParams
from nanhu.engine.video.sampling import iter_sampled_frames

if TYPE_CHECKING:
    from nanhu.engine.fingerprint import VideoPrint

log = logging.getLogger(__name__)


def fingerprint_video(
    source: Source, *, params: VideoParams | None = None, max_duration_s: float | None = None
) -> VideoPrint | None:
    """Keyframe embeddings of a source's first video stream (cover art is not video).

    Returns a :class:`engine.fingerprint.VideoPrint` of the keyframes that pass
    ``params.min_quality`` (vectors float32[n, d], times_s float32[n]), or None when every
    keyframe is blank (black, flat, a fade): such a track has nothing to match on, and the
    media's audio may still be fingerprinted.

    A still image (PNG, JPEG, ... as a single frame) raises :class:`MediaError`: one keyframe
    cannot be aligned in time, so it can neither be registered nor screened as a video.
    Raises :class:`MediaError` / :class:`EmptyMediaError` / :class:`LimitExceeded` as
    :func:`iter_sampled_frames` does, with a message that names the source.
    """
    params = params or VideoParams()
    prints = KeyframePrints(params)
    for frames, frame_times in stages.timed_iter("decode", iter_sampled_frames(
            source, params=params, max_duration_s=max_duration_s)):
        prints.add(frames, frame_times)
    return prints.result(source_name(source))


class KeyframePrints:
    """Embeddings of sampled frames as their chunks come (push style); keeps the keyframes that
    pass ``params.min_quality``. Holds only the kept vectors (float32[d] each), not frames.

    With ``views`` (queries), frames come at ``views.decode_size``; the whole frame is
    described at ``params.frame_size`` as a reference's is, and the chunk's framing regions and
    rotations (:func:`engine.video.framing.find_views`) as extra rows tagged by view. The
    ``sampler`` (its ``source_size``) tells portrait frames, whose quarter turns are tried.
    """

    def __init__(self, params: VideoParams | None = None, *, views: ViewParams | None = None,
                 sampler=None) -> None:
        self.params = params or VideoParams()
        self.views, self.sampler = views, sampler
        self._vectors: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._view_ids: list[np.ndarray] = []
        #: keyframes seen, kept or not
        self.total = 0

    def add(self, frames: np.ndarray, times_s: np.ndarray) -> None:
        """Embed one chunk: frames uint8[m, s, s] luma, times_s float32[m]."""
        self.total += len(frames)
        size = self.params.frame_size
        if self.views is None or frames.shape[1] == size:
            vecs, quality = frame_embeddings(frames, params=self.params)
            keep = quality >= self.params.min_quality
            self._append(vecs[keep], times_s[keep], 0)
            return
        x = np.asarray(frames, np.float32)
        found = find_views(x, source_size=getattr(self.sampler, "source_size", None),
                           params=self.views)
        for view in found:
            vecs, quality = frame_embeddings(view_frames(x, view, size=size), params=self.params)
            keep = quality >= self.params.min_quality
            self._append(vecs[keep], times_s[keep], view.id)

    def _append(self, vectors: np.ndarray, times: np.ndarray, view: int) -> None:
        self._vectors.append(vectors)
        self._times.append(times)
        self._view_ids.append(np.full(times.size, view, np.int8))

    def result(self, name: str) -> VideoPrint | None:
        """The track's :class:`engine.fingerprint.VideoPrint`, or None when no keyframe has
        content (``name`` is the source, for the log)."""
        from nanhu.engine.fingerprint import VideoPrint

        views = np.concatenate(self._view_ids) if self._view_ids else np.zeros(0, np.int8)
        kept = int(np.count_nonzero(views == 0))
        log.debug("%s: %d of %d keyframes have content", name, kept, self.total)
        if kept == 0:
            return None
        vectors, times = np.concatenate(self._vectors), np.concatenate(self._times)
        collector = getattr(self.sampler, "local", None)
        local = collector.result() if collector is not None else None
        if self.views is None:
            return VideoPrint(vectors, times, self.params.tag(), local=local)
        order = np.lexsort((views, times))  # time order, as every print's rows are
        return VideoPrint(vectors[order], times[order], self.params.tag(), views[order],
                          local=local)
