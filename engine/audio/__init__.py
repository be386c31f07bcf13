"""Audio: spectral peaks, landmark keys, their parameters and offset-histogram alignment.

``samples -> peaks.stream_peaks -> keys.triplet_hashes`` makes a reference's or a
query's :class:`Landmarks`; :mod:`engine.audio.shortlist` keeps the best-voted references' hits and
:mod:`engine.audio.align` votes them into aligned segments.
"""

from nanhu.engine.audio.keys import KEY_BITS, Landmarks, audio_landmarks, triplet_hashes
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, spectral_peaks, stft_db, stream_peaks

__all__ = [
    "KEY_BITS", "AudioParams", "Landmarks", "Peaks", "audio_landmarks", "spectral_peaks",
    "stft_db", "stream_peaks", "triplet_hashes",
]
