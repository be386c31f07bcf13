"""Small pictures of an upload's matched keyframes, kept with its claims for reviewers.

A screening of a media file (not of an edge fingerprint: then there is no picture to take)
whose acting matches hold video evidence picks a few of the upload's keyframe times inside
those matches (:func:`pick_times`), decodes a frame there again (a key frame of the file inside
the match where it has one: the cheapest to decode) and encodes it as a small JPEG
(:func:`extract`, within a time budget); :meth:`engine.claims.ClaimStore.record` stores them
with the claims whose matches span them, in the claim's own transaction (:func:`store`). Bounded: at most
:data:`PER_CLAIM` pictures a claim, :data:`WIDTH` pixels wide, :data:`MAX_BYTES` each.

A picture that cannot be taken is logged and left out: thumbnails never fail a screening.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from nanhu.engine.errors import MediaError
from nanhu.engine.media import Source, _first_real_video, open_container
from nanhu.engine.policy import NO_ACTION

log = logging.getLogger(__name__)

#: pictures per matched work (claim), and per screening
PER_CLAIM = 4
PER_SCREENING = 8
#: picture width in pixels (height follows the frame's aspect, at most :data:`MAX_HEIGHT`)
WIDTH = 160
MAX_HEIGHT = 160
#: a picture larger than this (bytes) is not kept
MAX_BYTES = 32 * 1024
#: wall-clock seconds one screening may spend taking pictures
BUDGET_S = 0.5
MIME = "image/jpeg"

SCHEMA = """
CREATE TABLE IF NOT EXISTS claim_thumbnails (
    claim_seq INTEGER NOT NULL,
    at_s REAL NOT NULL,
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS claim_thumbnails_claim ON claim_thumbnails(claim_seq);
"""


@dataclass(frozen=True)
class Thumbnail:
    """One picture: ``at_s`` seconds into the upload (from its first frame), JPEG bytes."""

    at_s: float
    data: bytes
    mime: str = MIME


def pick_times(matches: Iterable, keyframe_times_s: np.ndarray, *, per_match: int = PER_CLAIM,
               limit: int = PER_SCREENING) -> list[float]:
    """Upload keyframe times worth a picture: up to ``per_match`` spread evenly over each acting
    match with video evidence (its upload range), at most ``limit`` in all, sorted.

    keyframe_times_s : ndarray [shape=(n,)], float32, seconds (a fingerprint's ``video.times_s``)
    """
    times = np.sort(np.asarray(keyframe_times_s, np.float64))
    chosen: set[float] = set()
    for match in matches:
        if match.action == NO_ACTION or "video" not in match.modality:
            continue
        inside = times[(times >= match.query_start_s) & (times <= match.query_end_s)]
        if inside.size == 0:
            continue
        picks = np.unique(np.linspace(0, inside.size - 1, min(per_match, inside.size)).round())
        chosen.update(float(inside[int(i)]) for i in picks)
    return sorted(chosen)[:limit]


def video_ranges(matches: Iterable) -> list[tuple[float, float]]:
    """The upload ranges (seconds) of the acting matches with video evidence."""
    return [(m.query_start_s, m.query_end_s) for m in matches
            if m.action != NO_ACTION and "video" in m.modality]


def extract(source: Source, times_s: Sequence[float], *, within: Sequence[tuple[float, float]] = (),
            width: int = WIDTH, budget_s: float = BUDGET_S) -> list[Thumbnail]:
    """Pictures of the upload near ``times_s`` (seconds from the first frame) as small JPEGs;
    an empty list when the source has no decodable video. Never raises for bad media.

    Each picture is a key frame (I-frame) of the upload inside the range of ``within`` that
    holds the time, the first after the pictures already taken (only key frames are decoded:
    cheap). A range that has no such key frame left gets, if it has no picture yet, the frame
    on screen at the time (decoded from the key frame before it: up to a GOP of frames). Stops
    after ``budget_s`` seconds, so a long GOP at a high resolution cannot hold a screening up.
    """
    if not times_s:
        return []
    started = time.monotonic()
    out: list[Thumbnail] = []
    try:
        with open_container(source) as container:
            stream = _first_real_video(container)
            if stream is None:
                return []
            stream.thread_type = "AUTO"
            base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            for at in sorted(times_s):
                if time.monotonic() - started > budget_s:
                    log.info("thumbnails: %d of %d taken within %.1f s", len(out), len(times_s),
                             budget_s)
                    break
                lo, hi = next(((lo, hi) for lo, hi in within if lo <= at <= hi), (at, at))
                after = max((t.at_s for t in out if lo - 1e-3 <= t.at_s <= hi + 1e-3), default=None)
                frame = _key_frame(container, stream, base, at, lo, hi, after=after)
                if frame is None and after is None:
                    frame = _frame_at(container, stream, base + at)
                if frame is None:
                    continue
                at_s = round(max(float(frame.time or base + at) - base, 0.0), 3)
                data = _jpeg(frame, width)
                if len(data) > MAX_BYTES:
                    log.warning("thumbnail at %.2f s is %d bytes; not kept", at_s, len(data))
                    continue
                out.append(Thumbnail(at_s=at_s, data=data))
    except (MediaError, av.error.FFmpegError, OSError) as exc:
        log.warning("no thumbnails of the upload (%s)", exc)
    return out


def _seek(container, stream, target_s: float) -> None:
    container.seek(max(int(target_s / stream.time_base), 0), stream=stream, backward=True)


def _key_frame(container, stream, base: float, at: float, lo: float, hi: float, *,
               after: float | None = None):
    """The first key frame in ``[lo, hi]`` (seconds from the first frame) and later than
    ``after``, from the one before ``at`` on, or None."""
    stream.codec_context.skip_frame = "NONKEY"
    try:
        _seek(container, stream, base + at)
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time - base > hi + 1e-3:
                return None
            if frame.time - base >= lo - 1e-3 and (after is None or frame.time - base > after + 1e-3):
                return frame
        return None
    finally:
        stream.codec_context.skip_frame = "DEFAULT"


def _frame_at(container, stream, target: float):
    """The frame on screen at ``target`` seconds (stream time), or None."""
    _seek(container, stream, target)
    chosen = None
    for frame in container.decode(stream):
        if frame.time is not None and frame.time > target + 1e-3 and chosen is not None:
            break
        chosen = frame
    return chosen


def _jpeg(frame: av.VideoFrame, width: int) -> bytes:
    aspect = frame.height / max(frame.width, 1)
    out_w = max(2, width // 2 * 2)
    out_h = max(2, min(MAX_HEIGHT, int(round(out_w * aspect))) // 2 * 2)
    small = frame.reformat(width=out_w, height=out_h, format="yuvj420p")
    small.pts = None
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = out_w, out_h, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qscale": "5"}
    return b"".join(bytes(p) for p in [*codec.encode(small), *codec.encode(None)])


# --- storage (inside a claims.sqlite transaction) -------------------------------------------
def for_matches(thumbnails: Iterable[Thumbnail], matches: Iterable) -> list[Thumbnail]:
    """The pictures inside one of ``matches``' upload ranges, at most :data:`PER_CLAIM`."""
    ranges = [(m.query_start_s, m.query_end_s) for m in matches if "video" in m.modality]
    inside = [t for t in thumbnails if any(lo - 1e-3 <= t.at_s <= hi + 1e-3 for lo, hi in ranges)]
    return inside[:PER_CLAIM]


def store(db: sqlite3.Connection, claim_seq: int, thumbnails: Iterable[Thumbnail]) -> None:
    db.executemany("INSERT INTO claim_thumbnails VALUES (?,?,?,?)",
                   [(claim_seq, t.at_s, t.mime, t.data) for t in thumbnails])


def load(db: sqlite3.Connection, claim_seq: int) -> list[Thumbnail]:
    return [Thumbnail(at_s=at, data=bytes(data), mime=mime) for at, mime, data in db.execute(
        "SELECT at_s, mime, data FROM claim_thumbnails WHERE claim_seq = ? ORDER BY at_s, rowid",
        (claim_seq,))]
