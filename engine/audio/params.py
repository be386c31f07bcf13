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


def default_query_warps() -> tuple[tuple[float, float], ...]:
    """Candidate (speed, pitch) pairs a query is hashed at.

    - resampling (tape, DJ decks, "nightcore"): speed == pitch, 0.89..1.13 in 1.5 % steps;
    - time stretch at constant pitch: speed 0.95..1.05 in 1.5-2.5 % steps, pitch 1;
    - pitch shift at constant tempo: pitch within +-1 semitone (+-6 %) in 1.5 % steps, speed 1.

    Each candidate costs hashing and lookups only (the audio is analysed once); the grid is
    fine enough that a change between two candidates still keeps most hashes (log-frequency
    steps are 1.09 %).
    """
    grid = np.round(1.015 ** np.arange(-8, 9), 4)
    resample = [(float(s), float(s)) for s in grid]
    stretch = [(float(s), 1.0) for s in (0.95, 0.97, 0.985, 1.015, 1.03, 1.05)]
    shift = [(1.0, float(p)) for p in np.round(2 ** (np.array([-4, -3, -2, -1, 1, 2, 3, 4]) / 48), 4)]
    return tuple(resample + stretch + shift)


@dataclass(frozen=True)
class AudioParams:
    """Audio landmark parameters; ``version`` changes whenever a hash would change."""

    version: int = 2
    sample_rate: int = 8000
    n_fft: int = 1024
    hop_length: int = 128
    fmin_hz: float = 250.0
    fmax_hz: float = 3800.0
    bins_per_octave: int = 64
    #: local-maximum neighbourhood (frames, FFT bins)
    neighbourhood: tuple[int, int] = (9, 15)
    #: peaks kept per second of audio (strongest by prominence within 1 s blocks)
    peaks_per_second: float = 16.0
    #: pairs formed per anchor peak
    fanout: int = 4
    #: target zone: time delta in frames [1, max_dt_frames], |log-frequency delta| < 64 steps
    max_dt_frames: int = 127
    max_dlf_steps: int = 63
    #: peaks quieter than this below the loudest bin of the whole signal are ignored (dB)
    floor_db: float = -70.0
    #: candidate (speed, pitch) warps a query is hashed at; see ``default_query_warps``.
    query_warps: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.query_warps:
            object.__setattr__(self, "query_warps", default_query_warps())

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def query_speeds(self) -> tuple[float, ...]:
        return tuple(w[0] for w in self.query_warps)

    def tag(self) -> str:
        return f"audio-v{self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
