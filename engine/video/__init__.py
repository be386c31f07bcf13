"""Video: keyframes sampled by presentation time, flip-invariant embeddings, their parameters.

``sampling.iter_sampled_frames -> embed.frame_embeddings -> keyframes.fingerprint_video`` makes
a track's :class:`engine.fingerprint.VideoPrint`; :mod:`engine.video_align` aligns query
keyframes with a reference's into segments. The descriptor and the reasons for each part are in
:mod:`engine.video.embed`.
"""

from engine.video.embed import detect_borders, frame_embeddings, remove_borders
from engine.video.keyframes import fingerprint_video
from engine.video.params import VideoParams
from engine.video.sampling import MAX_HOLD_S, MAX_SIDE, iter_sampled_frames, sample_frames

__all__ = [
    "MAX_HOLD_S", "MAX_SIDE", "VideoParams", "detect_borders", "fingerprint_video",
    "frame_embeddings", "iter_sampled_frames", "remove_borders", "sample_frames",
]
