"""The fast neighbourhood filters of spectral_peaks against scipy.ndimage, their definition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from nanhu.engine.audio.peaks import _local_maxima, _local_mean_at, stft_db


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), size_rows=st.sampled_from([1, 2, 3, 9, 15]),
       size_cols=st.sampled_from([1, 4, 5, 15, 31]), levels=st.integers(2, 50),
       seed=st.integers(0, 2**31), data=st.data())
def test_local_maxima_equal_ndimage_nearest(rows, cols, size_rows, size_cols, levels, seed, data):
    # Few distinct levels: ties everywhere, which is where a local-maximum test can go wrong.
    spec = np.random.default_rng(seed).integers(0, levels, (rows, cols)).astype(np.float32) - 80
    r_lo = data.draw(st.integers(0, rows - 1))
    r_hi = data.draw(st.integers(r_lo + 1, rows))
    c_lo = data.draw(st.integers(0, cols - 1))
    c_hi = data.draw(st.integers(c_lo + 1, cols))
    size = (size_rows, size_cols)
    floor = -80 + levels / 2
    expected = (spec == ndimage.maximum_filter(spec, size=size, mode="nearest")) & (spec > floor)
    mask = np.zeros_like(expected)
    mask[r_lo:r_hi, c_lo:c_hi] = True
    want_rows, want_cols = np.nonzero(expected & mask)
    got_rows, got_cols = _local_maxima(spec, rows=(r_lo, r_hi), cols=(c_lo, c_hi), size=size,
                                       floor_db=floor)
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(got_cols, want_cols)


def test_local_maxima_across_slabs_equal_ndimage_nearest():
    # Several slabs of _SLAB_ROWS rows (and a short last one), the default band and window: the
    # flat slab arithmetic (row shifts as flat shifts, cells past a row's end) at full size.
    spec = np.round(np.random.default_rng(11).standard_normal((1300, 513)) * 4).astype(np.float32)
    spec[700:760] = -100.0  # a quiet stretch: ties below the floor
    size, floor = (9, 15), -20.0
    expected = (spec == ndimage.maximum_filter(spec, size=size, mode="nearest")) & (spec > floor)
    for (r_lo, r_hi), (c_lo, c_hi) in [((0, 1300), (32, 488)), ((3, 1297), (0, 513)),
                                       ((511, 1025), (1, 512))]:
        mask = np.zeros_like(expected)
        mask[r_lo:r_hi, c_lo:c_hi] = True
        want_rows, want_cols = np.nonzero(expected & mask)
        got_rows, got_cols = _local_maxima(spec, rows=(r_lo, r_hi), cols=(c_lo, c_hi),
                                           size=size, floor_db=floor)
        np.testing.assert_array_equal(got_rows, want_rows)
        np.testing.assert_array_equal(got_cols, want_cols)


def test_local_mean_at_points_matches_the_uniform_filter():
    rng = np.random.default_rng(3)
    spec = (rng.standard_normal((300, 513)) * 10 - 50).astype(np.float32)
    rows = rng.integers(0, 300, 500)
    cols = rng.integers(0, 513, 500)
    rows[:4], cols[:4] = [0, 299, 0, 299], [0, 512, 512, 0]  # corners: edges repeated
    full = ndimage.uniform_filter(spec.astype(np.float64), size=(27, 63), mode="nearest")
    np.testing.assert_allclose(_local_mean_at(spec, rows, cols, (27, 63)), full[rows, cols],
                               rtol=0, atol=1e-9)


def test_local_mean_at_points_across_slabs_matches_the_uniform_filter():
    # Slabs whose windows stay inside the rows (flat indices by one broadcast add) and the
    # first and last, which repeat the edge rows.
    rng = np.random.default_rng(4)
    spec = (rng.standard_normal((1300, 513)) * 10 - 50).astype(np.float32)
    rows = np.sort(np.concatenate([rng.integers(0, 1300, 3000), [0, 5, 511, 512, 1294, 1299]]))
    cols = rng.integers(0, 513, rows.size)
    full = ndimage.uniform_filter(spec.astype(np.float64), size=(27, 63), mode="nearest")
    np.testing.assert_allclose(_local_mean_at(spec, rows, cols, (27, 63)), full[rows, cols],
                               rtol=0, atol=1e-9)


def test_stft_matches_a_float64_reference():
    rng = np.random.default_rng(5)
    samples = (0.3 * rng.standard_normal(8000)).astype(np.float32)
    spec = stft_db(samples, n_fft=1024, hop_length=128)
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), 1024)[::128]
    window = np.hanning(1024)
    reference = 20 * np.log10(np.abs(np.fft.rfft(frames * window, axis=1)) * 2 / window.sum())
    assert spec.dtype == np.float32 and spec.shape == reference.shape
    np.testing.assert_allclose(spec, reference, atol=1e-3)
