"""Decoding with PyAV: any container and codec FFmpeg opens, from a path or from bytes.

A file is demuxed once for all it is fingerprinted by: :func:`demux` pushes each stream's
decoded frames through that stream's pipeline (:class:`AudioChunker`; the keyframe sampler of
:mod:`engine.video.sampling`). Audio is mixed to mono and resampled by PyAV's resampler to the
fingerprint's rate and *streamed* in chunks: a 3-hour file never sits in memory at its source
rate.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from nanhu.engine.errors import EmptyMediaError, LimitExceeded, MediaError, MediaNotFound

log = logging.getLogger(__name__)

#: A media source: a filesystem path or the file's bytes.
Source = str | Path | bytes | bytearray | memoryview

# PyAV raises FFmpegError subclasses for bad data, and a few plain exceptions for odd files.
_DECODE_ERRORS = (av.FFmpegError, ValueError, IndexError, EOFError, UnicodeDecodeError)


def source_name(source: Source) -> str:
    """How a source is named in messages: its path, or ``<N bytes>``."""
    if isinstance(source, (str, Path)):
        return str(source)
    return f"<{len(source)} bytes>"


def content_digest(source: Source) -> str:
    """SHA-256 of the source's bytes, hex; read in 1 MiB blocks for paths."""
    digest = hashlib.sha256()
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(source)
    return digest.hexdigest()


def open_container(source: Source) -> av.container.InputContainer:
    """Open ``source`` with PyAV, turning every failure into a :class:`MediaError`."""
    name = source_name(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise MediaNotFound(f"{name}: no such file")
        if path.is_dir():
            raise MediaError(f"{name}: is a directory, not a media file")
        if path.stat().st_size == 0:
            raise MediaError(f"{name}: file is empty")
        target: object = str(path)
    else:
        if len(source) == 0:
            raise MediaError(f"{name}: no data")
        target = io.BytesIO(bytes(source))
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except _DECODE_ERRORS as exc:
        raise MediaError(f"{name}: not a media file PyAV can open ({_reason(exc)})") from exc
    kind = _not_media_kind(container.format.name)
    if kind is not None:
        container.close()
        raise MediaError(f"{name}: not an audio or video file (FFmpeg reads it as {kind})")
    return container


# FFmpeg opens a few kinds of files that hold no audio or video as one-frame "videos": text by
# its extension (.txt, .nfo: the "tty" ANSI-art demuxer) and single pictures (PNG, JPEG...).
# Fingerprinting them would register a picture of text as a video reference.
_TEXT_FORMATS = {"tty", "bin", "xbin", "adf", "idf"}


def _not_media_kind(format_name: str) -> str | None:
    if format_name in _TEXT_FORMATS:
        return "text"
    if format_name == "image2" or format_name.endswith("_pipe"):
        return "a still image"
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split("; last error log")[0]


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds, from its headers (no decoding)."""

    duration_s: float | None
    has_audio: bool
    has_video: bool
    audio_codec: str | None
    video_codec: str | None
    width: int | None
    height: int | None


def probe(source: Source) -> MediaInfo:
    """Read container headers: duration and the first audio and video streams."""
    with open_container(source) as container:
        return _info(container)


def _info(container: av.container.InputContainer) -> MediaInfo:
    audio = container.streams.audio[0] if container.streams.audio else None
    video = _first_real_video(container)
    duration = container.duration / av.time_base if container.duration else None
    return MediaInfo(
        duration_s=duration,
        has_audio=audio is not None,
        has_video=video is not None,
        audio_codec=_codec_name(audio),
        video_codec=_codec_name(video),
        width=video.codec_context.width if _codec_name(video) else None,
        height=video.codec_context.height if _codec_name(video) else None,
    )


def _codec_name(stream) -> str | None:
    """The stream's decoder name; None without a stream or when FFmpeg has no decoder for it
    (PyAV then gives the stream no codec context)."""
    if stream is None or stream.codec_context is None:
        return None
    return stream.codec_context.name


def _first_real_video(container: av.container.InputContainer):
    """The first video stream that is not an attached picture (cover art in mp3/m4a) and that
    FFmpeg can decode. A stream without a decoder (an unknown or damaged sample-entry fourcc:
    ``avc1`` -> ``evc1``) has no codec context in PyAV; it is logged and passed over, so the
    file's audio is still fingerprinted, and a file with nothing else is refused cleanly."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if _codec_name(stream) is None:
            log.warning("video stream %d has a codec FFmpeg cannot decode; ignored",
                        stream.index)
            continue
        return stream
    return None


def decode_audio(
    source: Source,
    *,
    sample_rate: int,
    chunk_s: float = 10.0,
    max_duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Stream a source's first audio track as mono float32 chunks at ``sample_rate``.

    Yields
    ------
    chunk : ndarray [shape=(n,)], float32, full scale ±1, ``round(chunk_s * sample_rate)``
        samples each but the last.

    Raises :class:`MediaError` when the source cannot be opened, has no audio track or breaks
    while decoding (the message names the source and the reason), and
    :class:`engine.errors.LimitExceeded` past ``max_duration_s``.
    """
    name = source_name(source)
    with open_container(source) as container:
        yield from decode_container_audio(
            container, name, sample_rate=sample_rate, chunk_s=chunk_s,
            max_duration_s=max_duration_s,
        )


def decode_container_audio(
    container: av.container.InputContainer,
    name: str,
    *,
    sample_rate: int,
    chunk_s: float = 10.0,
    max_duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """:func:`decode_audio` on a container already open (``name`` is used in messages).

    Only the audio stream's packets are demuxed and decoded: the container's other streams are
    set to be discarded by the demuxer (so read nothing else from it). To decode audio and
    video in one pass, give :func:`demux` both pipelines instead.
    """
    chunker = audio_chunker(container, name, sample_rate=sample_rate, chunk_s=chunk_s,
                            max_duration_s=max_duration_s)
    for _, chunk in demux(container, name, [chunker]):
        yield chunk
    chunker.check_end()


class FramePipeline(Protocol):
    """One stream's work in a :func:`demux` pass: decoded frames in, items out (push style).
    ``label`` ("audio", "video") tags its items and names the stream in error messages."""

    stream: av.stream.Stream
    label: str

    def push(self, frame) -> list:
        """Take one decoded frame; return the items it completes (often none)."""
        ...

    def finish(self) -> list:
        """The stream has ended: return the last items."""
        ...


def demux(
    container: av.container.InputContainer, name: str, pipelines: Sequence[FramePipeline]
) -> Iterator[tuple[str, Any]]:
    """One demux pass over ``container``: the packets of each pipeline's stream are decoded
    and the frames pushed through it; every other stream is discarded by the demuxer.

    Yields (label, item) in packet order, then each pipeline's last items in pipeline order.
    A damaged packet is skipped (:class:`PacketDecoder`). An FFmpeg or PyAV error raises
    :class:`MediaError` naming the stream ("<name>: video breaks while decoding (reason)"; a
    packet that cannot be read names the only stream, or no stream when there are several).
    Errors the pipelines raise on purpose (limits, empty streams) pass through.
    """
    if not pipelines:
        return
    by_index = {p.stream.index: (p, PacketDecoder(name)) for p in pipelines}
    for other in container.streams:
        if other.index not in by_index:
            other.discard = av.stream.Discard.all
    what = f"{pipelines[0].label} " if len(pipelines) == 1 else ""
    packets = container.demux([p.stream for p in pipelines])
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except _DECODE_ERRORS as exc:
            raise MediaError(f"{name}: {what}breaks while decoding ({_reason(exc)})") from exc
        pipeline, decoder = by_index[packet.stream.index]
        try:
            items = [item for frame in decoder.decode(packet) for item in pipeline.push(frame)]
        except _DECODE_ERRORS as exc:
            raise MediaError(
                f"{name}: {pipeline.label} breaks while decoding ({_reason(exc)})") from exc
        for item in items:
            yield pipeline.label, item
    for pipeline in pipelines:
        try:
            items = pipeline.finish()
        except _DECODE_ERRORS as exc:
            raise MediaError(
                f"{name}: {pipeline.label} breaks while decoding ({_reason(exc)})") from exc
        for item in items:
            yield pipeline.label, item


class PacketDecoder:
    """Decodes one stream's packets; skips single corrupt packets, fails on a broken stream."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bad_packets = 0
        self.good_frames = 0

    def decode(self, packet) -> list:
        """The frames ``packet`` completes (none for a damaged packet)."""
        try:
            frames = packet.decode()
        except av.InvalidDataError as exc:
            self.bad_packets += 1
            # A stray damaged packet happens in real uploads; a stream of them is garbage.
            if self.bad_packets > 8 and self.bad_packets > self.good_frames:
                raise MediaError(
                    f"{self.name}: too many undecodable packets ({_reason(exc)})") from exc
            return []
        self.good_frames += len(frames)
        return frames


def audio_chunker(
    container: av.container.InputContainer,
    name: str,
    *,
    sample_rate: int,
    chunk_s: float = 10.0,
    max_duration_s: float | None = None,
) -> AudioChunker:
    """An :class:`AudioChunker` for the container's first audio stream.

    Raises :class:`MediaError` when there is no audio stream or FFmpeg cannot decode it.
    """
    return AudioChunker(_audio_stream(container, name), name, sample_rate=sample_rate,
                        chunk_s=chunk_s, max_duration_s=max_duration_s)


#: source seconds per resampler call in :class:`AudioChunker`: 1 s of 44.1 kHz stereo float is
#: 350 KiB, so the FIFO's read, the downmix and the filter's input stay in cache (10 s, 3.4 MiB,
#: do not); the output is the same for any batch
_RESAMPLE_BATCH_S = 1.0


class AudioChunker:
    """Decoded audio frames in, mono float32 chunks at ``sample_rate`` out (push style).

    Frames queue in an :class:`av.AudioFifo` (a copy in C) and go to the resampler (FFmpeg's
    ``aformat`` / ``aresample`` filter graph) about ``_RESAMPLE_BATCH_S`` (at most ``chunk_s``)
    at a time; the resampler's sink emits whole chunks of ``round(chunk_s * sample_rate)``
    samples itself: no per-frame filter-graph round trip, array or concatenation. The samples
    are those of resampling frame by frame (the resampler streams), bit for bit, whatever the
    batch. At most one batch of source audio waits in the FIFO.
    """

    label = "audio"

    def __init__(self, stream, name: str, *, sample_rate: int, chunk_s: float = 10.0,
                 max_duration_s: float | None = None) -> None:
        self.stream, self.name = stream, name
        self.sample_rate, self.chunk_s, self.max_duration_s = sample_rate, chunk_s, max_duration_s
        chunk_len = max(1, int(chunk_s * sample_rate))
        self._max_samples = (None if max_duration_s is None
                             else int(max_duration_s * sample_rate))
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate,
                                            frame_size=chunk_len)
        self._fifo = av.AudioFifo()
        self._batch = 0  # source samples per resampler call, from the first frame's rate
        #: samples emitted so far (at ``sample_rate``)
        self.total = 0

    def push(self, frame: av.AudioFrame) -> list[np.ndarray]:
        """Queue one decoded frame; returns the chunks (float32[n]) that completes, if any.

        Raises :class:`engine.errors.LimitExceeded` once past ``max_duration_s``.
        """
        # The FIFO checks timestamps for gaps; the resampler does not use them.
        frame.pts = None
        self._fifo.write(frame)
        if not self._batch:
            self._batch = max(1, int(min(self.chunk_s, _RESAMPLE_BATCH_S) * frame.sample_rate))
        if self._fifo.samples < self._batch:
            return []
        chunks = []
        for out in self._resampler.resample(self._fifo.read()):
            chunks.append(out.to_ndarray().reshape(-1))
            self.total += out.samples
            if self._max_samples is not None and self.total > self._max_samples:
                raise LimitExceeded(
                    f"{self.name}: audio is longer than the limit of {self.max_duration_s:g} s")
        return chunks

    def finish(self) -> list[np.ndarray]:
        """The last chunks: what waits in the FIFO, then the resampler's flush."""
        rest = self._fifo.read() if self._fifo.samples else None
        tail = [] if rest is None else self._resampler.resample(rest)
        blocks = [out.to_ndarray().reshape(-1) for out in [*tail, *self._resampler.resample(None)]]
        blocks = [block for block in blocks if block.size]
        self.total += sum(block.size for block in blocks)
        return blocks

    def check_end(self) -> None:
        """After :meth:`finish`: raise :class:`EmptyMediaError` when the track gave no samples;
        log when it ends well before its header's duration."""
        if self.total == 0:
            raise EmptyMediaError(f"{self.name}: audio track decodes to no samples")
        _warn_if_short(self.stream, self.total / self.sample_rate, self.name)


def _audio_stream(container: av.container.InputContainer, name: str):
    """The first audio stream, checked to have a decoder."""
    if not container.streams.audio:
        raise MediaError(f"{name}: has no audio track")
    stream = container.streams.audio[0]
    if _codec_name(stream) is None:
        raise MediaError(f"{name}: its audio codec is not supported (FFmpeg has no decoder)")
    return stream


def _warn_if_short(stream, decoded_s: float, name: str) -> None:
    """Log when the audio ends well before the duration its header declares.

    A file cut short (an interrupted download) still decodes: MP3 and ADTS are streams of
    self-contained frames, and the part that is there is real audio. It cannot be refused,
    because a header's duration may be an estimate from the bit rate (an intact VBR MP3
    without a Xing header can "declare" twice its length), but the user should hear of it.
    """
    if not stream.duration or stream.time_base is None:
        return
    declared_s = float(stream.duration * stream.time_base)
    if declared_s - decoded_s > max(1.0, 0.1 * declared_s):
        log.warning("%s: audio ends at %.1f s but the file's header declares %.1f s "
                    "(truncated file?)", name, decoded_s, declared_s)


def load_audio(
    source: Source, *, sample_rate: int, max_duration_s: float | None = None
) -> np.ndarray:
    """Whole first audio track as one mono float32 array at ``sample_rate`` (for short media).

    Returns
    -------
    samples : ndarray [shape=(n,)], float32, full scale ±1
    """
    return np.concatenate(
        list(decode_audio(source, sample_rate=sample_rate, max_duration_s=max_duration_s))
    )
