"""Audio: spectral peaks, landmark keys, their parameters and offset-histogram alignment.

``samples -> landmarks.stream_peaks -> landmarks.landmark_hashes`` makes a reference's or a
query's :class:`Landmarks`; :mod:`engine.audio.align` votes query hits into aligned segments.
"""

from engine.audio.landmarks import (
    HASH_BITS,
    Landmarks,
    Peaks,
    audio_landmarks,
    landmark_hashes,
    spectral_peaks,
    stft_db,
    stream_peaks,
)
from engine.audio.params import AudioParams

__all__ = [
    "HASH_BITS", "AudioParams", "Landmarks", "Peaks", "audio_landmarks", "landmark_hashes",
    "spectral_peaks", "stft_db", "stream_peaks",
]
