"""A video track's fingerprint: the embeddings of its sampled frames that have content."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from engine import stages
from engine.media import Source, source_name
from engine.video.embed import frame_embeddings
from engine.video.params import VideoParams
from engine.video.sampling import iter_sampled_frames

if TYPE_CHECKING:
    from engine.fingerprint import VideoPrint

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
    from engine.fingerprint import VideoPrint

    params = params or VideoParams()
    vectors, times = [], []
    total = 0
    for frames, frame_times in stages.timed_iter("decode", iter_sampled_frames(
            source, params=params, max_duration_s=max_duration_s)):
        vecs, quality = frame_embeddings(frames, params=params)
        keep = quality >= params.min_quality
        total += len(frames)
        vectors.append(vecs[keep])
        times.append(frame_times[keep])
    kept = sum(len(t) for t in times)
    log.debug("%s: %d of %d keyframes have content", source_name(source), kept, total)
    if kept == 0:
        return None
    return VideoPrint(np.concatenate(vectors), np.concatenate(times), params.tag())
