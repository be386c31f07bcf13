"""Spectral peaks of audio: the points that :mod:`engine.audio.keys` makes keys of.

The pipeline is pure numpy/scipy over arrays:

``samples -> stft_db -> spectral_peaks -> engine.audio.keys.triplet_hashes``

and :func:`stream_peaks` runs the first two in blocks so that memory stays bounded whatever the
length of the input. Parameter choices and their measurements: :mod:`engine.audio.params`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from nanhu.engine.audio.params import AudioParams


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


def peak_bins(params: AudioParams) -> tuple[int, int]:
    """FFT bins [lo, hi] the picker looks for peaks in: ``fmin_hz`` to ``fmax_hz``, short of
    the spectrum's ends (a peak's interpolation needs a bin either side)."""
    bin_hz = params.sample_rate / params.n_fft
    n_bins = params.n_fft // 2 + 1
    return (max(1, int(np.floor(params.fmin_hz / bin_hz))),
            min(n_bins - 2, int(np.ceil(params.fmax_hz / bin_hz))))


def stft_db(samples: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Log-magnitude short-time Fourier transform (Hann window, frames not centred).

    samples : ndarray [shape=(n,)], float32, full scale ±1
    Returns spec : ndarray [shape=(n_frames, n_fft // 2 + 1)], float32, dB re. a full-scale sine.
    Frame ``k`` covers samples ``[k * hop_length, k * hop_length + n_fft)``.
    """
    n_bins = n_fft // 2 + 1
    samples = np.asarray(samples, np.float32)
    if samples.size < n_fft:
        return np.zeros((0, n_bins), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop_length]
    window = _hann(n_fft)
    scale = np.float32(2.0) / window.sum()
    spec = np.empty((frames.shape[0], n_bins), np.float32)
    # Slabs of frames keep the windowed copy and its spectrum in cache; the windowed frames go
    # to one buffer, reused. scipy's rfft is about 3x faster than numpy's on these shapes (both
    # single precision for float32 input).
    windowed = np.empty((min(_STFT_SLAB, frames.shape[0]), n_fft), np.float32)
    for lo in range(0, frames.shape[0], _STFT_SLAB):
        slab = spec[lo : lo + _STFT_SLAB]
        block = np.multiply(frames[lo : lo + _STFT_SLAB], window, out=windowed[: slab.shape[0]])
        spectrum = sp_fft.rfft(block, axis=1, workers=1, overwrite_x=True)
        np.abs(spectrum, out=slab)
        slab *= scale
        np.maximum(slab, np.float32(1e-7), out=slab)
        np.log10(slab, out=slab)
        slab *= np.float32(20.0)
    return spec


#: frames per rfft call in :func:`stft_db` (256 frames: 1 MiB in, 1 MiB out)
_STFT_SLAB = 256


@functools.cache
def _hann(n_fft: int) -> np.ndarray:
    window = np.hanning(n_fft).astype(np.float32)
    window.flags.writeable = False
    return window


def _local_maxima(
    spec: np.ndarray, *, rows: tuple[int, int], cols: tuple[int, int], size: tuple[int, int],
    floor_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Cells of ``spec[rows[0]:rows[1], cols[0]:cols[1]]`` that are the maximum of their window.

    spec : ndarray [shape=(n, m)], float32, dB
    size : (rows, columns) of the window, centred as ``scipy.ndimage.maximum_filter`` centres it
        and truncated at the edges of ``spec`` (its ``mode="nearest"``: a repeated edge value
        never changes a maximum).
    Returns (row, col) : ndarray [shape=(p,)], int64 each, indices into ``spec`` in row-major
        order, of the cells equal to their window's maximum and louder than ``floor_db``.

    Rows go in slabs of ``_SLAB_ROWS`` (plus the window's reach) so the temporaries stay in
    cache. A slab is worked on as one flat row-major run of whole rows (:func:`_flat_window_max`):
    every maximum is a single 1-D pass, with none of numpy's per-row overhead on 2-D slices.
    -inf stands in for cells past the edges of ``spec`` (whole rows copied with -inf rows around
    them at the first and last slab; -inf columns only when the window's reach passes the
    spectrum's sides, which the default bands never do).
    """
    n, m = spec.shape
    (r_lo, r_hi), (c_lo, c_hi) = rows, cols
    if r_hi <= r_lo or c_hi <= c_lo:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    before = (size[0] // 2, size[1] // 2)
    after = (size[0] - 1 - before[0], size[1] - 1 - before[1])
    left, right = max(0, before[1] - c_lo), max(0, c_hi + after[1] - m)
    if left or right:
        spec = np.pad(spec, ((0, 0), (left, right)), constant_values=-np.inf)
    spec = np.ascontiguousarray(spec)
    width = spec.shape[1]
    scratch_len = (min(r_hi - r_lo, _SLAB_ROWS) + size[0] - 1) * width
    scratch = (np.empty(scratch_len, spec.dtype), np.empty(scratch_len, spec.dtype))
    found_rows, found_cols = [], []
    for top in range(r_lo, r_hi, _SLAB_ROWS):
        bottom = min(r_hi, top + _SLAB_ROWS)
        lo, hi = top - before[0], bottom + after[0]  # rows the windows reach
        if lo >= 0 and hi <= n:
            context = spec[lo:hi]
        else:
            context = np.pad(spec[max(0, lo) : min(n, hi)], ((max(0, -lo), max(0, hi - n)), (0, 0)),
                             constant_values=-np.inf)
        flat = context.reshape(-1)
        window_max = _flat_window_max(flat, width, size, scratch)
        # window_max[p] is the window whose top-left cell is p; a cell's window starts at
        # ``shift`` before it. Compare from the first asked cell of the slab's first row to the
        # last of its last row (cells of other columns between are dropped after).
        shift = before[0] * width + before[1]
        first = before[0] * width + c_lo + left
        last = (before[0] + bottom - top - 1) * width + c_hi + left
        hits = np.flatnonzero(np.equal(flat[first:last], window_max[first - shift : last - shift]))
        hits += first
        row, col = np.divmod(hits, width)
        keep = (col >= c_lo + left) & (col < c_hi + left)
        hits, row, col = hits[keep], row[keep], col[keep]
        loud = flat[hits] > floor_db
        found_rows.append(row[loud] + (top - before[0]))
        found_cols.append(col[loud] - left)
    return np.concatenate(found_rows), np.concatenate(found_cols)


#: rows of a slab in :func:`_local_maxima` (520 x 513 float32: about 1 MiB a temporary)
_SLAB_ROWS = 512


def _flat_window_max(flat: np.ndarray, width: int, size: tuple[int, int],
                     scratch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Window maxima over a row-major 2-D array given flat: ``out[p]`` is the maximum of the
    ``size`` window whose top-left cell is ``flat[p]`` (rows of ``width`` cells).

    flat : ndarray [shape=(rows * width,)]
    scratch : two 1-D buffers at least as long as ``flat``; the result is a view into one.
    Returns ndarray [shape=(rows * width - (size[0] - 1) * width - (size[1] - 1),)]. Values at
    cells whose window would cross the right edge of a row mix in the next row's first cells:
    they are garbage, and callers read only cells whose windows lie inside the rows.
    Separable, each axis by doubling (a window of ``2w`` is the maximum of two of ``w``), so an
    axis costs about ``log2(size) + 1`` elementwise maxima whatever the size: along the rows a
    shift of ``w`` rows is a flat shift of ``w * width``, along a row it is one of ``w``.
    """
    spare = list(scratch)  # ping-pong: the next result goes to spare[0]
    out, length = flat, flat.size
    for k, stride in ((size[0], width), (size[1], 1)):
        span = 1  # out[p] = maximum over `span` cells along this axis from p
        while 2 * span <= k:
            length -= span * stride
            out = np.maximum(out[:length], out[span * stride : span * stride + length],
                             out=spare[0][:length])
            spare.reverse()
            span *= 2
        if span < k:
            step = (k - span) * stride
            length -= step
            out = np.maximum(out[:length], out[step : step + length], out=spare[0][:length])
            spare.reverse()
    return out[:length]


def _local_mean_at(spec: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   size: tuple[int, int]) -> np.ndarray:
    """Mean of ``spec`` over a centred ``size`` window at (rows, cols), edges repeated.

    spec : ndarray [shape=(n, m)], float32, dB
    rows, cols : ndarray [shape=(p,)], int, the points, ``rows`` ascending
    Returns ndarray [shape=(p,)], float64; ``ndimage.uniform_filter(spec, size,
    mode="nearest")`` at the points, up to rounding. The column pass runs over whole rows
    (contiguous, cheap), in slabs of ``_SLAB_ROWS`` rows; the row pass only at the points, so
    no running sum crosses the array and a point's value does not depend on where a block
    starts.
    """
    half = size[0] // 2
    offsets = np.arange(-half, size[0] - half)
    row_steps = offsets * spec.shape[1]
    means = np.empty(rows.size, np.float64)
    bounds = np.searchsorted(rows, np.arange(0, spec.shape[0] + _SLAB_ROWS, _SLAB_ROWS))
    # One float64 buffer for every slab's column pass (scipy would allocate and zero one each).
    scratch = np.empty((min(spec.shape[0], _SLAB_ROWS + size[0]), spec.shape[1]), np.float64)
    for slab, (i, j) in enumerate(zip(bounds[:-1], bounds[1:])):
        if i == j:
            continue
        lo = max(0, slab * _SLAB_ROWS - half)
        hi = min(spec.shape[0], (slab + 1) * _SLAB_ROWS + size[0] - half)
        along_cols = ndimage.uniform_filter1d(spec[lo:hi], size[1], axis=1, mode="nearest",
                                              output=scratch[: hi - lo])
        if rows[i:j].min() - half >= 0 and rows[i:j].max() + size[0] - half <= spec.shape[0]:
            # No window reaches past the first or last row: one broadcast add makes the flat
            # indices (the same ones the clipped form below gives).
            at = ((rows[i:j] - lo) * spec.shape[1] + cols[i:j])[:, None] + row_steps
        else:
            window = np.clip(rows[i:j, None] + offsets, 0, spec.shape[0] - 1) - lo
            at = window * spec.shape[1] + cols[i:j, None]
        means[i:j] = np.take(along_cols, at).sum(axis=1)
    return means / size[0]


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
    start, stop = max(0, start), min(n_frames, stop)
    if n_frames == 0 or stop <= start:
        return _no_peaks()
    lo, hi = peak_bins(params)
    hi = min(hi, n_bins - 2)  # a spectrum of fewer bins than params say (tests, blocks)
    if hi < lo:
        return _no_peaks()
    # Local maxima only where peaks are kept: rows [start, stop), bins [lo, hi].
    rows, cols = _local_maxima(spec, rows=(start, stop), cols=(lo, hi + 1),
                               size=params.neighbourhood, floor_db=params.floor_db)
    local_mean = _local_mean_at(spec, rows, cols, (params.neighbourhood[0] * 3, 63))
    prominence = (spec[rows, cols] - local_mean).astype(np.float32)
    # Parabolic interpolation of the peak's frequency on the dB spectrum: sub-bin precision
    # keeps log-frequency steps meaningful after the speed rescaling of queries.
    left, mid, right = spec[rows, cols - 1], spec[rows, cols], spec[rows, cols + 1]
    curvature = left - 2.0 * mid + right
    delta = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1), 0)
    freq_hz = (cols + np.clip(delta, -0.5, 0.5)) * (params.sample_rate / params.n_fft)
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
    chunks: Iterable[np.ndarray], *, params: AudioParams, block_frames: int = 2048
) -> tuple[Peaks, int]:
    """Peaks of a stream of sample chunks, computed in blocks of ``block_frames`` frames.

    chunks : iterable of ndarray [shape=(n,)], float32 at ``params.sample_rate``; a chunk is
        read when its block is due, so a producer must not reuse a chunk's memory.
    Returns (peaks, n_samples). Memory holds one block (~33 s at the defaults) plus halos; the
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
    # Chunks not yet joined to the buffer: joined once a block is due, not once per chunk.
    pending: list[np.ndarray] = []
    next_frame = 0  # first frame not yet emitted
    n_samples = 0
    pieces: list[Peaks] = []

    def process(final: bool) -> None:
        nonlocal buffer, buffer_start, next_frame
        if not final and (n_samples - n_fft) // hop + 1 < next_frame + block_frames + halo:
            return
        if pending:
            buffer = np.concatenate([buffer, *pending])
            pending.clear()
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
        pending.append(chunk)
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

