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
- A key (fingerprint audio-v3) is a peak triplet packed into 30 bits: two log-frequency
  differences, a time ratio, a coarse log time span and a coarse anchor frequency
  (:mod:`engine.audio.keys`; the comparison with the 22-bit pair key of audio-v2 in
  ``docs/audio.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def default_query_warps() -> tuple[tuple[float, float], ...]:
    """Candidate (speed, pitch) pairs a query is hashed at (fingerprint audio-v3).

    - resampling (tape, DJ decks, "nightcore", re-uploads sped up to dodge filters):
      speed == pitch, 0.80..1.25 in 2.5 % steps;
    - time stretch at constant pitch: speed 0.95..1.05 in 2.5 % steps, pitch 1;
    - pitch shift at constant tempo: pitch within +-2 semitones in 1/4-semitone (1.5 %) steps.

    Speed steps are set by the offset histogram (a 1.25 % speed error drifts 4 frames over a
    5 s query, inside the +-2-frame vote window); pitch steps by the key's F cell (1/16
    octave, 4.4 %), which a step of a third of a cell always lands well inside. Most warps of
    one peak triplet share a key, and keys are looked up once each.
    """
    resample = [(float(s), float(s)) for s in np.round(1.025 ** np.arange(-9, 10), 4)]
    stretch = [(float(s), 1.0) for s in np.round(1.025 ** np.array([-2, -1, 1, 2]), 4)]
    shift = [(1.0, float(p)) for p in np.round(2 ** (np.arange(-8, 9) / 48), 4) if p != 1.0]
    return tuple(resample + stretch + shift)


@dataclass(frozen=True)
class AudioParams:
    """Audio landmark parameters; ``version`` changes whenever a hash would change."""

    version: int = 3
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
    #: targets per anchor; every pair of them with the anchor is a key (C(fanout, 2) keys)
    fanout: int = 4
    #: a query's peaks per second and targets per anchor (at least a reference's: noise
    #: displaces true peaks in the per-second ranking and inserts targets between them)
    query_peaks_per_second: float = 16.0
    query_fanout: int = 6
    #: a query key field (D1, D2, R, T) within this share of a cell of the cell's edge is also
    #: keyed in the neighbouring cell (:func:`engine.audio.keys.triplet_hashes`), 0 turns it
    #: off. Peak jitter under noise, pitch and tempo edits moves fields across cell edges;
    #: 0.15 doubles a query's keys and its aligned votes under pitch +1 rise from 6 to 10
    #: (0.3: 3x the keys for 12; docs/audio.md)
    query_probe: float = 0.15
    #: target zone: time delta in frames [1, max_dt_frames], |log-frequency delta| < 64 steps
    max_dt_frames: int = 127
    max_dlf_steps: int = 63
    #: triplet key quantisation (engine.audio.keys): frequency-difference step (log-freq
    #: steps), log2 time-span steps per octave, anchor-frequency cell (log-freq steps), and
    #: the shortest anchor-to-last-peak span keyed (frames; shorter spans are all jitter)
    key_d_step: float = 1.0
    key_t_per_octave: float = 6.0
    key_f_step: float = 4.0
    key_min_span_frames: int = 4
    #: levels of the time-ratio field R (at most 16: its 4 bits)
    key_r_levels: int = 16
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
