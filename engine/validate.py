"""Checking a fingerprint at the boundary, before it is stored or matched.

A fingerprint can come from anywhere: this engine, an edge client over gRPC, a file on disk.
Everything that is stored or matched goes through :func:`validate_fingerprint` first, so one
caller's bad print (a wrong dimension, NaN times, vectors of norm 1e6) can never reach the
shared indexes and break screening for everyone else.

What is checked, and what is done about it (every refusal is an
:class:`~engine.errors.InvalidArgument` whose message starts with the field it is about):

- ``duration_s``: finite, non-negative, at most :data:`MAX_DURATION_S`.
- ``audio``: a non-empty ``params_tag``; ``hashes``, ``frames`` and ``speed_index`` 1-D and of
  one length; hashes within ``KEY_BITS`` bits; frames non-negative and no later than the
  duration allows (at the fastest candidate speed, plus a second of slack); ``speed_index``
  within ``speeds``; ``speeds`` and ``pitches`` of one length, finite and within
  :data:`SPEED_RANGE`; 1.0 for references.
- ``audio_peaks`` (a query's peaks, keyed on demand; queries only): frames integers within
  the duration and sorted, log-frequencies finite and on the peak grid, prominences finite, no
  more peaks than the query picker keeps, 1..256 candidate (speed, pitch) warps within
  :data:`SPEED_RANGE`.
- ``video``: a params tag this Nanhu knows and the dimension it implies; vectors finite and of
  unit length. A vector whose norm is within :data:`NORM_TOLERANCE` of 1 (float rounding,
  half-precision clients) is **re-normalised**; any other norm (zero, 1e6, ...) is **refused**,
  because inner products with it would outrank every true match. Times finite, non-negative,
  sorted (non-decreasing) and within the duration.
- ``video.local`` (ORB features, :class:`engine.video.local.LocalFeatures`): arrays of the
  right shapes and types (one count a frame, counts summing to the keypoint rows, 32-byte
  descriptors, grid coordinates 0..255), times finite, sorted and within the duration, the
  detail frame's size, shown and mirrored rows alternating (queries) or no mirrored rows
  (references), and no more frames and keypoints than this Nanhu's sampler makes
  (:func:`local_limits`), so that no caller can make verification slow or skew its chance
  model for everyone else.
- references only: enough material to be matched at all (see :data:`MIN_REFERENCE_S` and
  :data:`MIN_REFERENCE_KEYFRAMES`); a reference that can never match is refused with the reason.

The function is pure: it returns the fingerprint (a copy when vectors were re-normalised).
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from nanhu.engine.audio.keys import KEY_BITS
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import peak_bins
from nanhu.engine.errors import InvalidArgument, VersionMismatch
from nanhu.engine.fingerprint import MAX_QUERY_WARPS, Fingerprint, VideoPrint

#: longest media a fingerprint may describe (s): a week; limits on what a server accepts are
#: lower and enforced elsewhere (``server.service.Limits``)
MAX_DURATION_S = 7 * 24 * 3600.0
#: a vector whose L2 norm differs from 1 by at most this is re-normalised; beyond it, refused
NORM_TOLERANCE = 0.01
#: candidate speeds and pitches a query may be hashed at
SPEED_RANGE = (0.25, 4.0)
#: slack on times against the duration (s): the duration is computed from decoded samples
#: and frame times, rounded on the way
TIME_SLACK_S = 0.05
#: shortest reference that can be matched: 2 s clips of generated music, copied inside a 30 s
#: mp3 upload and screened against a catalog of six other works, matched 4 times of 4; 1.5 s
#: clips 1 of 4 and 1 s clips never (too few aligned landmarks for the audio score)
MIN_REFERENCE_S = 2.0
#: fewest keyframes a video-only reference needs (``VideoMatchParams.min_keyframes``: the
#: alignment needs this many aligned keyframes for a segment)
MIN_REFERENCE_KEYFRAMES = 4
_MAX_DIGEST = 512
_DIGEST = re.compile(r"^[\x21-\x7e]*$")  # printable ASCII, no spaces: it goes into logs


def known_video_dims() -> dict[str, int]:
    """Video params tag -> embedding dimension, for every video parameter set this Nanhu knows."""
    from nanhu.engine.video import VideoParams

    params = VideoParams()
    return {params.tag(): params.dim}


def validate_fingerprint(
    fp: Fingerprint, *, what: str = "fingerprint", for_reference: bool,
    audio_params: AudioParams | None = None, video_dims: dict[str, int] | None = None,
) -> Fingerprint:
    """Check ``fp`` field by field; returns it, or a copy with re-normalised video vectors.

    what : how the fingerprint is named in messages (``"fingerprint of 'song-1'"``)
    for_reference : True for prints to be registered (speed 1.0, enough to be matched)
    audio_params : gives the frame rate frames are checked against (default parameters)
    video_dims : known video params tags and their dimensions (default: :func:`known_video_dims`)
    Raises InvalidArgument naming the field, VersionMismatch for a video tag of another version.
    """
    if not isinstance(fp, Fingerprint):
        raise InvalidArgument(f"{what}: not a fingerprint ({type(fp).__name__})")
    duration = fp.duration_s
    if not isinstance(duration, (int, float)) or not math.isfinite(duration) or not (
            0 <= duration <= MAX_DURATION_S):
        raise InvalidArgument(
            f"{what}: duration_s {duration!r} must be a finite number of seconds in "
            f"0..{MAX_DURATION_S:g}")
    if not isinstance(fp.digest, str) or len(fp.digest) > _MAX_DIGEST or not _DIGEST.match(
            fp.digest):
        raise InvalidArgument(
            f"{what}: digest must be at most {_MAX_DIGEST} printable ASCII characters, no spaces")
    if fp.audio is not None:
        _check_audio(fp, what, for_reference, audio_params or AudioParams())
    if fp.reference_peaks is not None:
        _check_reference_peaks(fp, what, audio_params or AudioParams())
    if fp.audio_peaks is not None:
        if for_reference:
            raise InvalidArgument(f"{_field(what, 'audio_peaks')}: a reference is registered "
                                  "with its keys (audio), not a query's peaks")
        _check_query_peaks(fp, what, audio_params or AudioParams())
    if fp.video is not None:
        video = _check_video(fp.video, float(duration), what, video_dims or known_video_dims(),
                             for_reference)
        if video is not fp.video:
            fp = dataclasses.replace(fp, video=video)
    if for_reference:
        _check_matchable(fp, what)
    return fp


def _field(what: str, name: str) -> str:
    return f"{what}: {name}"


def _array(value, what: str, name: str, ndim: int = 1) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        shape = getattr(value, "shape", None)
        raise InvalidArgument(f"{_field(what, name)} must be a {ndim}-D array (got shape {shape})")
    return value


def _check_audio(fp: Fingerprint, what: str, for_reference: bool, params: AudioParams) -> None:
    a = fp.audio
    prefix = "audio."
    if not isinstance(fp.audio_params_tag, str) or not fp.audio_params_tag:
        raise InvalidArgument(f"{_field(what, 'audio.params_tag')} is missing")
    hashes = _array(a.hashes, what, prefix + "hashes")
    frames = _array(a.frames, what, prefix + "frames")
    speed_index = _array(a.speed_index, what, prefix + "speed_index")
    speeds = _array(a.speeds, what, prefix + "speeds")
    pitches = _array(a.pitches, what, prefix + "pitches")
    n = hashes.size
    if frames.size != n or speed_index.size != n:
        raise InvalidArgument(
            f"{_field(what, 'audio.frames')} and audio.speed_index must have one entry per hash "
            f"({frames.size} and {speed_index.size} for {n} hashes)")
    for name, arr in (("hashes", hashes), ("frames", frames), ("speed_index", speed_index)):
        if arr.dtype.kind not in "iu":
            raise InvalidArgument(f"{_field(what, prefix + name)} must hold integers")
    if pitches.size != speeds.size:
        raise InvalidArgument(
            f"{_field(what, 'audio.pitches')} must have one entry per speed "
            f"({pitches.size} for {speeds.size})")
    if n and speeds.size == 0:
        raise InvalidArgument(f"{_field(what, 'audio.speeds')} is empty but there are hashes")
    for name, arr in (("speeds", speeds), ("pitches", pitches)):
        if not _in_speed_range(arr):
            low, high = SPEED_RANGE
            raise InvalidArgument(
                f"{_field(what, prefix + name)} must be finite and within {low:g}..{high:g}")
        if for_reference and np.any(arr != 1.0):
            raise InvalidArgument(
                f"{_field(what, prefix + name)}: a reference must be fingerprinted at speed 1.0")
    if n == 0:
        return
    if int(hashes.min()) < 0 or int(hashes.max()) >= 1 << KEY_BITS:
        raise InvalidArgument(f"{_field(what, 'audio.hashes')} must be below 2**{KEY_BITS}")
    if int(speed_index.min()) < 0 or int(speed_index.max()) >= speeds.size:
        raise InvalidArgument(
            f"{_field(what, 'audio.speed_index')} must point into audio.speeds "
            f"(0..{speeds.size - 1})")
    if int(frames.min()) < 0:
        raise InvalidArgument(f"{_field(what, 'audio.frames')} must not be negative")
    fastest = max(1.0, float(speeds.max()))
    last_frame = math.ceil(fp.duration_s * params.frames_per_second * fastest
                           + params.frames_per_second)
    if int(frames.max()) > last_frame:
        raise InvalidArgument(
            f"{_field(what, 'audio.frames')}: frame {int(frames.max())} lies past the end of "
            f"{fp.duration_s:g} s of audio (at most {last_frame})")


def _check_reference_peaks(fp: Fingerprint, what: str, params: AudioParams) -> None:
    """A reference's peaks (what verification reads): frames within the audio, log-frequencies
    on the peak grid, one frequency per frame, no more than the peak picker keeps."""
    _check_peaks(fp.reference_peaks, fp.duration_s, what, params,
                 ("audio.peak_frames", "audio.peak_log_freq"), params.peaks_per_second)


def _check_query_peaks(fp: Fingerprint, what: str, params: AudioParams) -> None:
    """A query's peaks, keyed on demand by the matcher: the peaks as a reference's are
    checked, sorted by frame (keying takes anchors in that order), prominences finite, and
    candidate warps as keyed queries' speeds and pitches are."""
    query = fp.audio_peaks
    name = "audio_peaks"
    if not fp.audio_params_tag:
        raise InvalidArgument(f"{_field(what, name + '.params_tag')} must be set")
    _check_peaks(query.peaks, fp.duration_s, what, params,
                 (name + ".frames", name + ".log_freq"), params.query_peaks_per_second)
    frames = np.asarray(query.peaks.frame)
    if frames.size > 1 and bool(np.any(np.diff(frames) < 0)):
        raise InvalidArgument(f"{_field(what, name + '.frames')} must be sorted (non-decreasing)")
    prominence = _array(query.peaks.prominence, what, name + ".prominence")
    if prominence.size != frames.size or not np.all(np.isfinite(prominence)):
        raise InvalidArgument(f"{_field(what, name + '.prominence')} must be one finite value "
                              "a peak")
    warps = np.asarray(query.warps, np.float64)
    if (warps.ndim != 2 or warps.shape[1] != 2 or not 1 <= len(warps) <= MAX_QUERY_WARPS
            or not _in_speed_range(warps)):
        lo, hi = SPEED_RANGE
        raise InvalidArgument(f"{_field(what, name + '.warps')} must be 1..{MAX_QUERY_WARPS} "
                              f"(speed, pitch) pairs within {lo:g}..{hi:g}")


def _in_speed_range(values: np.ndarray) -> bool:
    """Every candidate speed or pitch finite and within :data:`SPEED_RANGE` (true when none)."""
    low, high = SPEED_RANGE
    return not values.size or bool(np.all(np.isfinite(values)) and values.min() >= low
                                    and values.max() <= high)


def _check_peaks(peaks, duration_s: float, what: str, params: AudioParams,
                 names: tuple[str, str], per_second: float) -> None:
    """Peaks' frames within the audio, log-frequencies on the peak grid, one frequency per
    frame, no more than a picker keeping ``per_second`` peaks a second keeps; ``names``: the
    fields' names in messages (frames, log-frequencies)."""
    frames_name, lf_name = names
    frames = _array(peaks.frame, what, frames_name)
    log_freq = _array(peaks.log_freq, what, lf_name)
    if frames.size != log_freq.size:
        raise InvalidArgument(
            f"{_field(what, lf_name)} must have one entry per peak frame "
            f"({log_freq.size} for {frames.size})")
    if frames.size == 0:
        return
    if frames.dtype.kind not in "iu":
        raise InvalidArgument(f"{_field(what, frames_name)} must hold integers")
    last_frame = math.ceil((duration_s + 1.0) * params.frames_per_second)
    if int(frames.min()) < 0 or int(frames.max()) > last_frame:
        raise InvalidArgument(
            f"{_field(what, frames_name)} must lie in 0..{last_frame} (the audio's "
            f"{duration_s:g} s)")
    # The peak picker's bins [lo, hi] with half a bin of parabolic interpolation either side.
    bin_hz = params.sample_rate / params.n_fft
    lo, hi = peak_bins(params)
    lo_bin, hi_bin = lo - 0.5, hi + 0.5
    bottom = math.floor(params.bins_per_octave * math.log2(lo_bin * bin_hz / params.fmin_hz))
    top = math.ceil(params.bins_per_octave * math.log2(hi_bin * bin_hz / params.fmin_hz))
    if not (np.all(np.isfinite(log_freq)) and log_freq.min() >= bottom
            and log_freq.max() <= top):
        raise InvalidArgument(
            f"{_field(what, lf_name)} must be finite and within {bottom}..{top}")
    most = 4 * per_second * (duration_s + 1.0) + 64
    if frames.size > most:
        raise InvalidArgument(
            f"{_field(what, frames_name)}: {frames.size} peaks for {duration_s:g} s "
            f"(at most {most:.0f})")


def check_local_tag(tag: str, what: str = "fingerprint") -> None:
    """Refuse local features of another parameter set (the proto names them by tag; a
    :class:`LocalFeatures` in process is this Nanhu's own)."""
    from nanhu.engine.video.local import LocalParams

    known = LocalParams().tag()
    if tag == known:
        return
    if isinstance(tag, str) and re.fullmatch(r"orb-v\d+", tag):
        raise VersionMismatch(
            f"{_field(what, 'video.local.params_tag')} {tag!r} is another version than this "
            f"Nanhu's ({known}); re-fingerprint with this version")
    raise InvalidArgument(f"{_field(what, 'video.local.params_tag')} {tag!r} is not {known}")


def local_limits(duration_s: float, *, for_reference: bool) -> tuple[int, int]:
    """(most rows, most keypoints a row) of local features: what this Nanhu's own sampler
    (:mod:`engine.video.local_sampling`) can make for ``duration_s`` of video. A query: 64
    frames shown and mirrored, 500 keypoints each; a reference: its byte budget an hour plus
    the budget's bucket (4 keyframes), 48 keypoints each. Bounds the work and memory any caller
    can make verification spend, and the ORB keyframes a registrant adds to the chance model."""
    from nanhu.engine.video.local import LocalParams

    p = LocalParams()
    if not for_reference:
        return 2 * p.max_query_frames, p.query_features
    budget = duration_s * p.bytes_per_hour / 3600.0 / p.keyframe_bytes
    return int(p.bucket_keyframes + budget), p.reference_features


def _check_local(local, duration: float, what: str, for_reference: bool):
    """Local features that fit together, fit this Nanhu's parameters and stay within its
    limits; returns them with canonical dtypes (a copy where a dtype differed)."""
    from nanhu.engine.video.local import DESCRIPTOR_BYTES, GRID, LocalFeatures, LocalParams

    name = "video.local."
    times = _array(local.times_s, what, name + "times_s")
    counts = _array(local.counts, what, name + "counts")
    xy = _array(local.xy, what, name + "xy", ndim=2)
    descriptors = _array(local.descriptors, what, name + "descriptors", ndim=2)
    if times.dtype.kind != "f" or counts.dtype.kind not in "iu":
        raise InvalidArgument(f"{_field(what, name + 'times_s')} must be floats and "
                              "video.local.counts integers")
    if counts.size != times.size:
        raise InvalidArgument(f"{_field(what, name + 'counts')} must have one entry per frame "
                              f"({counts.size} for {times.size} times)")
    rows, per_row = local_limits(duration, for_reference=for_reference)
    if times.size > rows:
        raise InvalidArgument(f"{_field(what, name + 'times_s')}: {times.size} frames; "
                              f"at most {rows} here")
    if counts.size and (int(counts.min()) < 0 or int(counts.max()) > per_row):
        raise InvalidArgument(f"{_field(what, name + 'counts')} must be within 0..{per_row} "
                              "keypoints a frame")
    total = int(counts.sum()) if counts.size else 0
    if xy.shape != (total, 2):
        raise InvalidArgument(f"{_field(what, name + 'xy')} must hold one (x, y) per keypoint: "
                              f"counts sum to {total}, xy has shape {xy.shape}")
    if descriptors.shape[0] != total or descriptors.shape[1] != DESCRIPTOR_BYTES:
        raise InvalidArgument(
            f"{_field(what, name + 'descriptors')} must hold {DESCRIPTOR_BYTES} bytes (an ORB "
            f"descriptor) per keypoint: counts sum to {total}, shape {descriptors.shape}")
    if descriptors.dtype != np.uint8:
        raise InvalidArgument(f"{_field(what, name + 'descriptors')} must be bytes (uint8)")
    if xy.dtype.kind not in "iu" or (total and (int(xy.min()) < 0 or int(xy.max()) >= GRID)):
        raise InvalidArgument(f"{_field(what, name + 'xy')} must be whole grid steps in "
                              f"0..{GRID - 1} (finite, not {xy.dtype})")
    if not np.all(np.isfinite(times)) or (times.size and float(times.min()) < 0):
        raise InvalidArgument(f"{_field(what, name + 'times_s')} must be finite and not negative")
    if np.any(np.diff(times) < 0):
        raise InvalidArgument(f"{_field(what, name + 'times_s')} must be sorted (non-decreasing)")
    if times.size and float(times.max()) > duration + TIME_SLACK_S:
        raise InvalidArgument(f"{_field(what, name + 'times_s')}: frame at "
                              f"{float(times.max()):g} s lies past duration_s {duration:g}")
    size = tuple(local.size) if isinstance(local.size, (tuple, list)) else ()
    detail = LocalParams().detail_size
    if times.size and not (len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size)
                           and max(size) == detail and min(size) >= 2):
        raise InvalidArgument(f"{_field(what, name + 'size')} {local.size!r} must be the detail "
                              f"frame's (width, height), {detail} on the longest side")
    flipped = local.flipped
    if for_reference and flipped is not None:
        raise InvalidArgument(f"{_field(what, name + 'flipped')}: a reference's frames are "
                              "described as shown only (leave it unset)")
    if flipped is not None:
        flipped = np.asarray(flipped)
        shown, mirrored = flipped[0::2], flipped[1::2]
        if (flipped.shape != times.shape or flipped.dtype != bool or times.size % 2
                or shown.any() or not mirrored.all()
                or not np.array_equal(times[0::2], times[1::2])):
            raise InvalidArgument(
                f"{_field(what, name + 'flipped')} must alternate shown and mirrored rows of "
                "the same frames (false, true, ...), one per frame")
    canonical = LocalFeatures(times.astype(np.float32, copy=False),
                              counts.astype(np.int32, copy=False),
                              xy.astype(np.uint8, copy=False), descriptors,
                              (int(size[0]), int(size[1])) if len(size) == 2 else (0, 0),
                              flipped)
    unchanged = (canonical.times_s is times and canonical.counts is counts and canonical.xy is xy
                 and canonical.size == local.size and flipped is local.flipped)
    return local if unchanged else canonical


def _check_video(v: VideoPrint, duration: float, what: str, dims: dict[str, int],
                 for_reference: bool) -> VideoPrint:
    tag = v.params_tag
    if tag not in dims:
        known = ", ".join(sorted(dims))
        if isinstance(tag, str) and re.fullmatch(r"video-v\d+", tag):
            raise VersionMismatch(
                f"{_field(what, 'video.params_tag')} {tag!r} is another version than this "
                f"Nanhu's ({known}); re-fingerprint with this version")
        raise InvalidArgument(f"{_field(what, 'video.params_tag')} {tag!r} is not one of {known}")
    dim = dims[tag]
    vectors = _array(v.vectors, what, "video.vectors", ndim=2)
    times = _array(v.times_s, what, "video.times_s")
    if vectors.shape[1] != dim:
        raise InvalidArgument(
            f"{_field(what, 'video.dim')} is {vectors.shape[1]}; {tag} keyframe vectors have "
            f"{dim} dimensions")
    if vectors.shape[0] != times.size:
        raise InvalidArgument(
            f"{_field(what, 'video.times_s')} must have one entry per vector "
            f"({times.size} for {vectors.shape[0]})")
    if v.views is not None and np.shape(v.views) != times.shape:
        raise InvalidArgument(
            f"{_field(what, 'video.views')} must have one entry per vector "
            f"({np.size(v.views)} for {vectors.shape[0]})")
    if vectors.dtype.kind != "f" or times.dtype.kind != "f":
        raise InvalidArgument(f"{_field(what, 'video.vectors')} and times_s must be floats")
    if v.local is not None:
        local = _check_local(v.local, duration, what, for_reference)
        if local is not v.local:
            v = dataclasses.replace(v, local=local)
    if times.size == 0:
        return v
    if not np.all(np.isfinite(vectors)):
        row = int(np.flatnonzero(~np.isfinite(vectors).all(1))[0])
        raise InvalidArgument(f"{_field(what, 'video.vectors')}: vector {row} is not finite")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise InvalidArgument(
            f"{_field(what, 'video.vectors')}: vector {row} has norm {norms[row]:.6g}; keyframe "
            f"vectors must be L2-normalised (norm 1 +- {NORM_TOLERANCE:g})")
    if not np.all(np.isfinite(times)):
        raise InvalidArgument(f"{_field(what, 'video.times_s')} must be finite")
    if float(times.min()) < 0:
        raise InvalidArgument(f"{_field(what, 'video.times_s')} must not be negative")
    if np.any(np.diff(times) < 0):
        raise InvalidArgument(f"{_field(what, 'video.times_s')} must be sorted (non-decreasing)")
    if float(times.max()) > duration + TIME_SLACK_S:
        raise InvalidArgument(
            f"{_field(what, 'video.times_s')}: keyframe at {float(times.max()):g} s lies past "
            f"duration_s {duration:g}")
    if np.any(np.abs(norms - 1.0) > 1e-5):  # float32 rounding needs no copy
        vectors = (vectors / norms[:, None]).astype(np.float32)
        return dataclasses.replace(v, vectors=vectors)
    return v


def _check_matchable(fp: Fingerprint, what: str) -> None:
    """Refuse references no query could ever match (the issue: 1-frame videos, 1 s clips)."""
    n_audio = len(fp.audio) if fp.audio is not None else 0
    n_video = len(fp.video) if fp.video is not None else 0
    if n_audio == 0 and n_video == 0:
        return  # the catalog refuses an empty print with its own message
    if fp.duration_s < MIN_REFERENCE_S:
        raise InvalidArgument(
            f"{_field(what, 'duration_s')} {fp.duration_s:.2f} s is shorter than the shortest "
            f"reference that can be matched ({MIN_REFERENCE_S:g} s)")
    if n_audio == 0 and n_video < MIN_REFERENCE_KEYFRAMES:
        raise InvalidArgument(
            f"{_field(what, 'video')} has {n_video} keyframe(s) and no audio: a video reference "
            f"needs at least {MIN_REFERENCE_KEYFRAMES} keyframes to be matched")
