"""Audio landmarks: spectral peaks, and the :class:`Landmarks` keys made of them.

The pipeline is pure numpy/scipy over arrays:

``samples -> stft_db -> spectral_peaks -> engine.audio.keys.triplet_hashes``

and :func:`stream_peaks` runs the first two in blocks so that memory stays bounded whatever the
length of the input. Parameter choices and their measurements: :mod:`engine.audio.params`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.audio.params import AudioParams


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks, sorted by frame then frequency.

    frame : ndarray [shape=(n,)], int64, STFT frame index (hop units)
    log_freq : ndarray [shape=(n,)], float32, ``bins_per_octave * log2(f / fmin_hz)``
    prominence : ndarray [shape=(n,)], float32, dB above the local mean
    """

    frame: np.ndarray
    log_freq: np.ndarray
    prominence: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.size)


@dataclass(frozen=True)
class Landmarks:
    """Landmark hashes of one signal, hashed at one or more candidate speeds.

    hashes : ndarray [shape=(n,)], uint32 keys, ``engine.audio.keys.KEY_BITS`` significant bits
    frames : ndarray [shape=(n,)], int32, anchor frame rescaled to reference time
        (``round(query_frame * speed)``), so ``reference_frame - frames`` is constant for a copy
    speed_index : ndarray [shape=(n,)], uint8, index into ``speeds`` / ``pitches``
    speeds : ndarray [shape=(s,)], float32, candidate time scales: the query plays ``speed``
        times faster than the reference (1.0 for references)
    pitches : ndarray [shape=(s,)], float32, candidate frequency scales: the query sounds
        ``pitch`` times higher (equal to ``speeds`` for resampling-style changes)
    """

    hashes: np.ndarray
    frames: np.ndarray
    speed_index: np.ndarray
    speeds: np.ndarray
    pitches: np.ndarray

    def __len__(self) -> int:
        return int(self.hashes.size)


def stft_db(samples: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Log-magnitude short-time Fourier transform (Hann window, frames not centred).

    samples : ndarray [shape=(n,)], float32, full scale ±1
    Returns spec : ndarray [shape=(n_frames, n_fft // 2 + 1)], float32, dB re. a full-scale sine.
    Frame ``k`` covers samples ``[k * hop_length, k * hop_length + n_fft)``.
    """
    if samples.size < n_fft:
        return np.zeros((0, n_fft // 2 + 1), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop_length]
    window = np.hanning(n_fft).astype(np.float32)
    spectrum = np.fft.rfft(frames * window, axis=1)
    magnitude = np.abs(spectrum).astype(np.float32) * (2.0 / window.sum())
    return 20.0 * np.log10(np.maximum(magnitude, 1e-7))


def spectral_peaks(
    spec: np.ndarray, *, params: AudioParams, keep_frames: tuple[int, int] | None = None,
    frame_offset: int = 0,
) -> Peaks:
    """Prominent local maxima of a log-magnitude spectrogram, thinned per second.

    spec : ndarray [shape=(n_frames, n_bins)], float32, dB
    keep_frames : (start, stop) rows of ``spec`` whose peaks are returned (the rest is context
        for the neighbourhood filters when working in blocks); default all rows.
    frame_offset : added to the returned frame numbers (absolute frame of row 0).
    """
    n_frames, n_bins = spec.shape
    start, stop = keep_frames if keep_frames is not None else (0, n_frames)
    if n_frames == 0 or stop <= start:
        return _no_peaks()
    bin_hz = params.sample_rate / params.n_fft
    lo = max(1, int(np.floor(params.fmin_hz / bin_hz)))
    hi = min(n_bins - 2, int(np.ceil(params.fmax_hz / bin_hz)))
    local_max = ndimage.maximum_filter(spec, size=params.neighbourhood, mode="nearest")
    local_mean = ndimage.uniform_filter(spec, size=(params.neighbourhood[0] * 3, 63), mode="nearest")
    is_peak = (spec == local_max) & (spec > params.floor_db)
    is_peak[:start] = False
    is_peak[stop:] = False
    is_peak[:, :lo] = False
    is_peak[:, hi + 1 :] = False
    rows, cols = np.nonzero(is_peak)
    prominence = (spec[rows, cols] - local_mean[rows, cols]).astype(np.float32)
    # Parabolic interpolation of the peak's frequency on the dB spectrum: sub-bin precision
    # keeps log-frequency steps meaningful after the speed rescaling of queries.
    left, mid, right = spec[rows, cols - 1], spec[rows, cols], spec[rows, cols + 1]
    curvature = left - 2.0 * mid + right
    delta = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1), 0)
    freq_hz = (cols + np.clip(delta, -0.5, 0.5)) * bin_hz
    log_freq = (params.bins_per_octave * np.log2(freq_hz / params.fmin_hz)).astype(np.float32)
    frames = rows.astype(np.int64) + frame_offset
    keep = _strongest_per_block(frames, prominence, params)
    return Peaks(frames[keep], log_freq[keep], prominence[keep])


def _no_peaks() -> Peaks:
    return Peaks(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


def _strongest_per_block(frames: np.ndarray, prominence: np.ndarray, params: AudioParams):
    """Indices (sorted) of the ``peaks_per_second`` most prominent peaks in each 1 s block."""
    if frames.size == 0:
        return np.zeros(0, np.int64)
    block_frames = max(1, int(round(params.frames_per_second)))
    block = frames // block_frames
    order = np.lexsort((-prominence, block))
    sorted_block = block[order]
    first_of_block = np.searchsorted(sorted_block, sorted_block, side="left")
    rank = np.arange(order.size) - first_of_block
    per_block = int(round(params.peaks_per_second * block_frames / params.frames_per_second))
    return np.sort(order[rank < per_block])


def stream_peaks(
    chunks: Iterable[np.ndarray], *, params: AudioParams, block_frames: int = 4096
) -> tuple[Peaks, int]:
    """Peaks of a stream of sample chunks, computed in blocks of ``block_frames`` frames.

    chunks : iterable of ndarray [shape=(n,)], float32 at ``params.sample_rate``
    Returns (peaks, n_samples). Memory holds one block (~65 s at the defaults) plus halos; the
    result equals :func:`spectral_peaks` over the whole signal except that per-second thinning
    and the local mean see block edges exactly as the whole-signal version (halos cover them).
    """
    hop, n_fft = params.hop_length, params.n_fft
    # Halo: enough frames for the neighbourhood filters (the local mean is the widest).
    halo = params.neighbourhood[0] * 2 + 2
    fps_block = max(1, int(round(params.frames_per_second)))
    block_frames = max(fps_block, block_frames // fps_block * fps_block)
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # absolute sample index of buffer[0]
    next_frame = 0  # first frame not yet emitted
    n_samples = 0
    pieces: list[Peaks] = []

    def process(final: bool) -> None:
        nonlocal buffer, buffer_start, next_frame
        while True:
            total_frames = (buffer_start + buffer.size - n_fft) // hop + 1
            if not final and total_frames < next_frame + block_frames + halo:
                return
            stop = min(next_frame + block_frames, total_frames) if final else next_frame + block_frames
            if stop <= next_frame:
                return
            first = max(0, next_frame - halo)
            last = min(total_frames, stop + halo)
            lo = first * hop - buffer_start
            hi = (last - 1) * hop + n_fft - buffer_start
            spec = stft_db(buffer[lo:hi], n_fft=n_fft, hop_length=hop)
            pieces.append(
                spectral_peaks(
                    spec, params=params, keep_frames=(next_frame - first, stop - first),
                    frame_offset=first,
                )
            )
            next_frame = stop
            drop = max(0, (next_frame - halo) * hop - buffer_start)
            buffer, buffer_start = buffer[drop:], buffer_start + drop
            if final and next_frame >= total_frames:
                return

    for chunk in chunks:
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        n_samples += chunk.size
        buffer = np.concatenate([buffer, chunk])
        process(final=False)
    process(final=True)
    if not pieces:
        return _no_peaks(), n_samples
    return (
        Peaks(
            np.concatenate([p.frame for p in pieces]),
            np.concatenate([p.log_freq for p in pieces]),
            np.concatenate([p.prominence for p in pieces]),
        ),
        n_samples,
    )

