"""Video: keyframes sampled by presentation time, flip-invariant embeddings, their parameters.

``sampling.KeyframeSampler -> embed.frame_embeddings -> keyframes.KeyframePrints`` makes a
track's :class:`engine.fingerprint.VideoPrint` from the frames of a demux pass
(:func:`engine.media.demux`; :func:`fingerprint_video` runs one for the video stream alone,
:func:`engine.fingerprint.fingerprint_media` one for audio and video together).
:mod:`engine.video.align` aligns query keyframes with a reference's into segments. The
descriptor and the reasons for each part are in :mod:`engine.video.embed`. Queries also
describe framing regions and rotations as extra views (:mod:`engine.video.framing`).
"""

from nanhu.engine.video.embed import detect_borders, frame_embeddings, remove_borders
from nanhu.engine.video.framing import VIEW_NAMES, View, ViewParams, find_views, view_frames
from nanhu.engine.video.keyframes import KeyframePrints, fingerprint_video
from nanhu.engine.video.params import VideoParams
from nanhu.engine.video.sampling import (
    MAX_HOLD_S,
    MAX_SIDE,
    KeyframeSampler,
    iter_sampled_frames,
    keyframe_sampler,
    sample_frames,
)

__all__ = [
    "MAX_HOLD_S", "MAX_SIDE", "VIEW_NAMES", "KeyframePrints", "KeyframeSampler", "VideoParams",
    "View", "ViewParams", "detect_borders", "find_views", "fingerprint_video", "frame_embeddings",
    "iter_sampled_frames", "keyframe_sampler", "remove_borders", "sample_frames", "view_frames",
]
