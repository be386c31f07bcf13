"""Local-feature segments: the ORB features of references' sparse keyframes, one file a commit.

Layout of ``video/seg-<g>.vlf`` (little-endian; no pickle)::

    magic   b"NHLF"
    u32     format version (FORMAT_VERSION)
    u32     LocalParams.version the features were made with
    u32     references r;  u32 keyframes m;  u64 keypoints c
    u32[r, 5]  per reference: ordinal, first keyframe, keyframes, detail width, detail height
    f32[m]     keyframe times (s)
    u16[m]     keypoints of each keyframe
    u8[c, 2]   keypoint coordinates on the 256-step grid of the detail frame
    u8[c, 32]  ORB descriptors
    u32     CRC-32 of everything before it

A file is written under a temporary name, fsynced and renamed before the manifest names it
(:meth:`engine.catalog.Catalog.commit`); one that is short, or whose checksum does not match,
is refused as corrupt, so a torn write is never read as features. An unknown version is
refused with a message that says what to do.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt, VersionMismatch
from nanhu.engine.video.local import DESCRIPTOR_BYTES, LocalFeatures

MAGIC = b"NHLF"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sIIIIQ")


def write_local_segment(path: Path, items: list[tuple[int, LocalFeatures]], *,
                        params_version: int) -> int:
    """Write the features of some references (``(ordinal, features)`` pairs) and fsync;
    returns the file's size in bytes."""
    items = [(int(o), f) for o, f in items if len(f)]
    table = np.zeros((len(items), 5), np.uint32)
    first = 0
    for row, (ordinal, features) in enumerate(items):
        table[row] = (ordinal, first, len(features), *features.size)
        first += len(features)
    parts = [f for _, f in items]
    times = np.concatenate([f.times_s for f in parts]).astype("<f4") if parts else np.zeros(0, "<f4")
    counts = (np.concatenate([f.counts for f in parts]).astype("<u2") if parts
              else np.zeros(0, "<u2"))
    xy = (np.concatenate([f.xy for f in parts]).astype(np.uint8) if parts
          else np.zeros((0, 2), np.uint8))
    desc = (np.concatenate([f.descriptors for f in parts]).astype(np.uint8) if parts
            else np.zeros((0, DESCRIPTOR_BYTES), np.uint8))
    body = b"".join([
        _HEAD.pack(MAGIC, FORMAT_VERSION, int(params_version), len(items), int(times.size),
                   int(xy.shape[0])),
        table.astype("<u4").tobytes(), times.tobytes(), counts.tobytes(), xy.tobytes(),
        desc.tobytes()])
    data = body + struct.pack("<I", zlib.crc32(body))
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return len(data)


def read_local_segment(path: Path, *, params_version: int) -> dict[int, LocalFeatures]:
    """The features of a segment file, by reference ordinal.

    Raises :class:`CatalogCorrupt` for a file that is short, not one of these, or fails its
    checksum; :class:`VersionMismatch` for another format or parameter version.
    """
    data = Path(path).read_bytes()
    if len(data) < _HEAD.size + 4 or data[:4] != MAGIC:
        raise CatalogCorrupt(f"{path}: not a Nanhu local-feature segment")
    magic, version, made_with, n_refs, n_keyframes, n_points = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise VersionMismatch(
            f"{path}: local-feature segment format version {version} is not supported (this "
            f"Nanhu reads version {FORMAT_VERSION}); rebuild the catalog with this Nanhu")
    if made_with != params_version:
        raise VersionMismatch(
            f"{path}: local features made with parameters version {made_with}, this Nanhu "
            f"uses version {params_version}; re-register the references with this Nanhu")
    expected = (_HEAD.size + 20 * n_refs + 6 * n_keyframes
                + (2 + DESCRIPTOR_BYTES) * n_points + 4)
    if len(data) != expected:
        raise CatalogCorrupt(f"{path}: local-feature segment is {len(data)} bytes, its header "
                             f"says {expected} (torn write?)")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise CatalogCorrupt(f"{path}: local-feature segment fails its checksum")
    at = _HEAD.size
    table = np.frombuffer(data, "<u4", n_refs * 5, at).reshape(n_refs, 5)
    at += table.nbytes
    times = np.frombuffer(data, "<f4", n_keyframes, at)
    at += times.nbytes
    counts = np.frombuffer(data, "<u2", n_keyframes, at).astype(np.int32)
    at += 2 * n_keyframes
    xy = np.frombuffer(data, np.uint8, 2 * n_points, at).reshape(n_points, 2)
    at += xy.nbytes
    desc = np.frombuffer(data, np.uint8, DESCRIPTOR_BYTES * n_points, at).reshape(
        n_points, DESCRIPTOR_BYTES)
    starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    out: dict[int, LocalFeatures] = {}
    for ordinal, first, m, width, height in table.tolist():
        lo, hi = starts[first], starts[first + m]
        out[int(ordinal)] = LocalFeatures(
            times[first:first + m].astype(np.float32), counts[first:first + m], xy[lo:hi],
            desc[lo:hi], (int(width), int(height)))
    return out
