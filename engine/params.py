"""Parameters that change fingerprints, in frozen, versioned dataclasses.

A catalog records the parameter version it was built with and refuses fingerprints of another
version with a clear message (:class:`engine.errors.VersionMismatch`) instead of matching garbage.

Audio landmark choices (see ``docs/audio.md`` for the measurements behind them):

- 8 kHz mono: speech and music identity lives below 4 kHz, phone codecs (AMR-NB) keep only
  that band, and a low rate makes decoding, resampling and the STFT cheap.
- 1024-point FFT (128 ms window, 7.8 Hz bins), hop 128 (16 ms): fine frequency resolution
  keeps hashes specific, the hop gives 16 ms offset resolution (the benchmark wants 0.1 s).
- Peaks are local maxima of the log spectrogram in a (9 frames x 15 bins) neighbourhood,
  ranked by prominence over a local mean, and thinned to ``peaks_per_second``.
- Frequencies are hashed on a log scale (``bins_per_octave`` steps above ``fmin_hz``), so a
  speed change moves every peak by the same number of steps; queries are hashed at a grid of
  candidate speeds (peak coordinates are rescaled, the audio is analysed once) which is how
  Nanhu survives resampling-style speed changes without weakening reference hashes.
- A hash packs (anchor log-frequency 8 bits, log-frequency delta 7 bits, time delta 7 bits)
  into 22 bits of a uint32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioParams:
    """Audio landmark parameters; ``version`` changes whenever a hash would change."""

    version: int = 1
    sample_rate: int = 8000
    n_fft: int = 1024
    hop_length: int = 128
    fmin_hz: float = 250.0
    fmax_hz: float = 3800.0
    bins_per_octave: int = 64
    #: local-maximum neighbourhood (frames, FFT bins)
    neighbourhood: tuple[int, int] = (9, 15)
    #: peaks kept per second of audio (strongest by prominence within 1 s blocks)
    peaks_per_second: float = 32.0
    #: pairs formed per anchor peak
    fanout: int = 5
    #: target zone: time delta in frames [1, max_dt_frames], |log-frequency delta| < 64 steps
    max_dt_frames: int = 127
    max_dlf_steps: int = 63
    #: peaks quieter than this below the loudest bin of the whole signal are ignored (dB)
    floor_db: float = -70.0
    #: candidate speeds a query is hashed at (query = reference played ``speed`` times faster,
    #: resampling-style: tempo and pitch together). Geometric grid, 1.5 % apart, 0.89..1.13.
    query_speeds: tuple[float, ...] = tuple(float(x) for x in np.round(1.015 ** np.arange(-8, 9), 4))

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def tag(self) -> str:
        return f"audio-v{self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
