"""The portable fingerprint of one piece of media, and how media becomes one.

A :class:`Fingerprint` is all matching needs: audio landmarks, video keyframe embeddings, the
duration and the content digest. It serialises to a small versioned binary (``to_bytes``; no
pickle) and maps one to one onto the ``nanhu.v1.Fingerprint`` proto message, so clients can
fingerprint at the edge and send only this.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nanhu.engine.audio.keys import Landmarks, QueryPeaks, audio_landmarks, query_peaks, reference_audio
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.errors import EmptyMediaError, MediaError, VersionMismatch
from nanhu.engine.media import Source, content_digest, open_container, source_name
from nanhu.engine.media_tags import media_tags

if TYPE_CHECKING:
    from nanhu.engine.video import KeyframePrints
    from nanhu.engine.video.local import LocalFeatures

log = logging.getLogger(__name__)

FORMAT = "nanhu-fingerprint"
#: written when a query's audio travels as peaks, keyed on demand by the matcher (the peak
#: check then runs on it); a fingerprint with keys is written as version 1, which every Nanhu
#: reads, so that only what an older reader would misread (no keys: no audio) is refused there
FORMAT_VERSION = 2
#: versions this Nanhu reads
READABLE_VERSIONS = (1, 2)
#: the most candidate (speed, pitch) warps a query's peaks may ask to be keyed at
MAX_QUERY_WARPS = 256


@dataclass(frozen=True)
class VideoPrint:
    """Keyframe embeddings of a video track.

    vectors : ndarray [shape=(n, d)], float32, L2-normalised
    times_s : ndarray [shape=(n,)], float32, presentation time of each sampled frame (s)
    views : ndarray [shape=(n,)], int8, or None: which view of its keyframe each row describes
        (:data:`engine.video.framing.VIEW_NAMES`; 0 the whole frame). Queries only: a query
        may describe a keyframe's regions and rotations as extra rows; references have one
        row per keyframe and no views.
    local : :class:`engine.video.local.LocalFeatures` or None: ORB features of some frames
        (a reference's sparse keyframes; a query's frame every second, shown and mirrored),
        for geometric verification (:mod:`engine.video.verify`)
    """

    vectors: np.ndarray
    times_s: np.ndarray
    params_tag: str
    views: np.ndarray | None = None
    local: LocalFeatures | None = None

    def __len__(self) -> int:
        return int(self.times_s.size)

    @property
    def has_views(self) -> bool:
        """True when some rows describe views other than the whole frame."""
        return self.views is not None and bool(np.any(self.views != 0))

    def primary(self) -> VideoPrint:
        """The whole-frame rows only (what a reference would hold)."""
        if self.views is None:
            return self
        keep = self.views == 0
        return VideoPrint(self.vectors[keep], self.times_s[keep], self.params_tag,
                          local=self.local)


@dataclass(frozen=True)
class Fingerprint:
    """Fingerprint of one piece of media (a reference or a query)."""

    duration_s: float
    digest: str = ""
    audio: Landmarks | None = None
    audio_params_tag: str = ""
    video: VideoPrint | None = None
    meta: dict = field(default_factory=dict)
    #: a query's audio as peaks, keyed on demand (``fingerprint_media(keys_on_demand=True)``;
    #: then ``audio`` is None): the matcher keys a long upload window by window
    audio_peaks: QueryPeaks | None = None
    #: a reference's audio peaks (the ones its keys were made from; ``fingerprint_media`` of a
    #: reference), stored by the catalog to verify candidate alignments peak by peak
    reference_peaks: Peaks | None = None

    @property
    def is_empty(self) -> bool:
        no_audio = (self.audio is None or len(self.audio) == 0) and (
            self.audio_peaks is None or len(self.audio_peaks) == 0)
        return no_audio and (self.video is None or len(self.video) == 0)

    def keyed(self) -> Fingerprint:
        """This fingerprint with its audio keys made, for sending or storing (``to_bytes``, the
        proto); itself when it has them already."""
        if self.audio_peaks is None:
            return self
        return dataclasses.replace(self, audio=self.audio_peaks.landmarks(), audio_peaks=None)

    # --- serialisation -------------------------------------------------------------------
    @property
    def format_version(self) -> int:
        """The format version this fingerprint is written in: :data:`FORMAT_VERSION` with
        query peaks, else 1 (keys)."""
        return FORMAT_VERSION if self.audio_peaks is not None else 1

    def to_bytes(self) -> bytes:
        """Versioned binary form: an ``.npz`` archive of plain arrays plus a JSON header. A
        query keyed on demand travels as its peaks (12 bytes a peak, about 16 a second, against
        about 17,000 keys a second keyed)."""
        header = {
            "format": FORMAT, "version": self.format_version, "duration_s": self.duration_s,
            "digest": self.digest, "audio_params": self.audio_params_tag,
            "video_params": self.video.params_tag if self.video is not None else "",
            "meta": self.meta,
        }
        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(json.dumps(header).encode(), np.uint8)
        }
        if self.audio is not None:
            arrays.update(
                audio_hashes=self.audio.hashes, audio_frames=self.audio.frames,
                audio_speed_index=self.audio.speed_index, audio_speeds=self.audio.speeds,
                audio_pitches=self.audio.pitches,
            )
        if self.audio_peaks is not None:
            arrays.update(query_peak_arrays(self.audio_peaks))
        if self.reference_peaks is not None:
            arrays.update(audio_peak_frames=self.reference_peaks.frame.astype(np.int64),
                          audio_peak_log_freq=self.reference_peaks.log_freq.astype(np.float32))
        if self.video is not None:
            arrays.update(video_vectors=self.video.vectors, video_times_s=self.video.times_s)
            if self.video.views is not None:
                arrays.update(video_views=self.video.views)
            if self.video.local is not None:
                arrays.update(_local_arrays(self.video.local))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            header = json.loads(arrays["header"].tobytes().decode())
        except (ValueError, KeyError, OSError, UnicodeDecodeError) as exc:
            raise MediaError(f"not a Nanhu fingerprint ({exc})") from exc
        if header.get("format") != FORMAT:
            raise MediaError("not a Nanhu fingerprint (wrong format tag)")
        if header.get("version") not in READABLE_VERSIONS:
            raise VersionMismatch(
                f"fingerprint format version {header.get('version')} is not supported "
                f"(this Nanhu reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        audio = None
        if "audio_hashes" in arrays:
            audio = Landmarks(
                arrays["audio_hashes"].astype(np.uint32), arrays["audio_frames"].astype(np.int32),
                arrays["audio_speed_index"].astype(np.uint8),
                arrays["audio_speeds"].astype(np.float32),
                arrays.get("audio_pitches", arrays["audio_speeds"]).astype(np.float32),
            )
        audio_peaks = None
        if "query_peak_frames" in arrays:
            names = ("query_peak_frames", "query_peak_log_freq", "query_peak_prominence",
                     "query_warps")
            if not all(n in arrays for n in names):
                raise MediaError("not a Nanhu fingerprint (query peaks without all of "
                                 f"{', '.join(names)})")
            audio_peaks = query_peaks_from_arrays(*(arrays[n] for n in names),
                                                  header["audio_params"])
        reference_peaks = None
        if "audio_peak_frames" in arrays:
            frames = arrays["audio_peak_frames"].astype(np.int64)
            log_freq = arrays["audio_peak_log_freq"].astype(np.float32)
            if frames.shape != log_freq.shape or frames.ndim != 1:
                raise MediaError("not a Nanhu fingerprint (reference peaks of unequal lengths)")
            reference_peaks = Peaks(frames, log_freq, np.zeros(frames.size, np.float32))
        video = None
        if "video_vectors" in arrays:
            video = VideoPrint(
                arrays["video_vectors"].astype(np.float32),
                arrays["video_times_s"].astype(np.float32), header["video_params"],
                arrays["video_views"].astype(np.int8) if "video_views" in arrays else None,
                _local_from_arrays(arrays),
            )
        return cls(
            duration_s=float(header["duration_s"]), digest=header["digest"], audio=audio,
            audio_params_tag=header["audio_params"], video=video, meta=header.get("meta", {}),
            audio_peaks=audio_peaks, reference_peaks=reference_peaks,
        )


def query_peak_arrays(peaks: QueryPeaks) -> dict[str, np.ndarray]:
    """A query's peaks as plain arrays (the binary form's and the proto's fields): frames
    int32, log-frequency and prominence float32, warps float64 [shape=(w, 2)] (speed, pitch:
    the keys depend on their exact values)."""
    return {"query_peak_frames": np.asarray(peaks.peaks.frame, np.int32),
            "query_peak_log_freq": np.asarray(peaks.peaks.log_freq, np.float32),
            "query_peak_prominence": np.asarray(peaks.peaks.prominence, np.float32),
            "query_warps": np.asarray(peaks.warps, np.float64).reshape(-1, 2)}


def query_peaks_from_arrays(frames, log_freq, prominence, warps, params_tag: str) -> QueryPeaks:
    """:class:`QueryPeaks` from :func:`query_peak_arrays`' arrays, keyed with this Nanhu's
    parameters of ``params_tag``. Raises MediaError for arrays that do not fit together and
    VersionMismatch for a tag this Nanhu does not make (the values themselves are checked by
    :func:`engine.validate.validate_fingerprint`)."""
    params = AudioParams()
    if params_tag != params.tag():
        raise VersionMismatch(f"fingerprint audio peaks have parameters {params_tag!r}; this "
                              f"Nanhu keys peaks of {params.tag()!r} (re-fingerprint with it)")
    frames, log_freq = np.asarray(frames), np.asarray(log_freq)
    prominence, warps = np.asarray(prominence), np.asarray(warps, np.float64)
    if not (frames.ndim == log_freq.ndim == prominence.ndim == 1
            and frames.size == log_freq.size == prominence.size):
        raise MediaError("not a Nanhu fingerprint (query peaks of unequal lengths)")
    if frames.size and frames.dtype.kind not in "iu":
        raise MediaError("not a Nanhu fingerprint (query peak frames are not integers)")
    warps = warps.reshape(-1, 2) if warps.size % 2 == 0 else None
    if warps is None or not 1 <= len(warps) <= MAX_QUERY_WARPS:
        raise MediaError(f"not a Nanhu fingerprint (query warps must be 1..{MAX_QUERY_WARPS} "
                         "(speed, pitch) pairs)")
    return QueryPeaks(Peaks(frames.astype(np.int64), log_freq.astype(np.float32),
                            prominence.astype(np.float32)),
                      tuple((float(a), float(b)) for a, b in warps), params)


def _local_arrays(local: LocalFeatures) -> dict[str, np.ndarray]:
    out = {"local_times_s": local.times_s, "local_counts": local.counts, "local_xy": local.xy,
           "local_descriptors": local.descriptors,
           "local_size": np.asarray(local.size, np.int32)}
    if local.flipped is not None:
        out["local_flipped"] = local.flipped
    return out


def _local_from_arrays(arrays: dict[str, np.ndarray]) -> LocalFeatures | None:
    from nanhu.engine.video.local import DESCRIPTOR_BYTES, LocalFeatures

    if "local_times_s" not in arrays:
        return None
    counts = arrays["local_counts"].astype(np.int32)
    xy, desc = arrays["local_xy"], arrays["local_descriptors"]
    times = arrays["local_times_s"].astype(np.float32)
    if (counts.shape != times.shape or np.any(counts < 0) or xy.dtype != np.uint8
            or desc.dtype != np.uint8 or xy.shape != (int(counts.sum()), 2)
            or desc.shape != (int(counts.sum()), DESCRIPTOR_BYTES)):
        raise MediaError("not a Nanhu fingerprint (local features do not fit together)")
    flipped = arrays.get("local_flipped")
    size = tuple(int(v) for v in arrays["local_size"].reshape(-1)[:2])
    return LocalFeatures(times, counts, xy, desc, size,
                         None if flipped is None else flipped.astype(bool))


def fingerprint_media(
    source: Source,
    *,
    audio_params: AudioParams | None = None,
    query: bool = False,
    video: bool = True,
    max_duration_s: float | None = None,
    keys_on_demand: bool = False,
    local: bool = True,
) -> Fingerprint:
    """Decode ``source`` and fingerprint its audio (and video, when present and enabled).

    ``query=True`` hashes audio at every candidate (speed, pitch) of ``audio_params.query_warps``;
    with ``keys_on_demand`` too, the query's audio is kept as peaks (``audio_peaks``) and keyed
    by the matcher one window at a time, so that screening a long upload holds one window's keys.
    Raises :class:`MediaError` when nothing can be fingerprinted (no usable track, silence).

    The file is opened and demuxed once (:func:`engine.media.demux`): audio packets go to the
    resampler and on, in chunks, to the audio landmarks; video packets to the keyframe sampler,
    whose chunks are embedded as they come; with ``local`` (default) some sampled frames are also
    described with ORB features for geometric verification. Neither the decoded audio nor the frames are held
    whole, so memory stays bounded whatever the media's length.
    """
    from nanhu.engine import media, stages
    from nanhu.engine.video import KeyframePrints, VideoParams, keyframe_sampler
    from nanhu.engine.video.framing import ViewParams
    from nanhu.engine.video.local_sampling import LocalCollector

    params = audio_params or AudioParams()
    name = source_name(source)
    with open_container(source) as container:
        tags = media_tags(container)
        has_audio = bool(container.streams.audio)
        video_stream = media._first_real_video(container)
        has_video = video_stream is not None
        pipelines: list[media.FramePipeline] = []
        prints = None
        if video and has_video:
            video_params = VideoParams()
            # First, so that at the end of the file the video's errors come before the audio's.
            # Queries decode larger and describe framing regions and rotations as extra views
            # (engine.video.framing); references keep the whole frame alone.
            views = ViewParams() if query else None
            # Local features: a reference's sparse keyframes, a query's frame every second
            # (engine.video.local_sampling); the global embedding is weak under crops and
            # captions, where these are strong.
            sampler = keyframe_sampler(
                container, name, stream=video_stream, params=video_params,
                max_duration_s=max_duration_s,
                frame_size=views.decode_size if views is not None else None,
                local=LocalCollector(query=query) if local else None)
            pipelines.append(sampler)
            prints = KeyframePrints(video_params, views=views, sampler=sampler)
        chunker = None
        if has_audio:
            chunker = media.audio_chunker(container, name, sample_rate=params.sample_rate,
                                          max_duration_s=max_duration_s)
            pipelines.append(chunker)
        landmarks = None
        peaks = None
        reference_peaks = None
        duration = 0.0
        if pipelines:
            items = stages.timed_iter("decode", media.demux(container, name, pipelines))
            chunks = _audio_chunks(items, prints)
            if chunker is not None and query and keys_on_demand:
                peaks, duration = query_peaks(chunks, params=params)
            elif chunker is not None and query:
                landmarks, duration = audio_landmarks(chunks, params=params,
                                                      warps=params.query_warps)
            elif chunker is not None:
                landmarks, reference_peaks, duration = reference_audio(chunks, params=params)
            else:
                for _ in chunks:  # video alone: every item goes to prints
                    pass
        video_print = prints.result(name) if prints is not None else None
        if chunker is not None:
            try:
                chunker.check_end()
            except EmptyMediaError:
                if video_print is None:
                    raise
                landmarks = peaks = reference_peaks = None
    if not has_audio and video_print is None:
        what = "no audio track" if not has_video else "no audio track and no usable video"
        raise MediaError(f"{name}: {what}: nothing to fingerprint")
    if video_print is not None and len(video_print):
        duration = max(duration, float(video_print.times_s.max()) + 0.5)
    fp = Fingerprint(
        duration_s=duration, digest=content_digest(source), audio=landmarks,
        audio_params_tag=params.tag() if landmarks is not None or peaks is not None else "",
        video=video_print, audio_peaks=peaks, meta={"tags": tags} if tags else {},
        reference_peaks=reference_peaks,
    )
    if fp.is_empty:
        raise EmptyMediaError(f"{name}: nothing to fingerprint (silent or blank media)")
    return fp


def _audio_chunks(items: Iterable[tuple[str, Any]],
                  prints: KeyframePrints | None) -> Iterator[np.ndarray]:
    """The audio chunks of a demux pass's items; the video chunks go to ``prints`` (a
    :class:`engine.video.KeyframePrints`) as they come, outside the ``decode`` stage's time."""
    for label, item in items:
        if label == "audio":
            yield item
        elif prints is not None:
            prints.add(*item)
