"""Embedded tags of a media file (title, artist, album), as a folder ingest reads them.

Containers keep tags in different places: MP4, Matroska, MP3 (ID3) and FLAC on the container,
Ogg Vorbis and Opus on the audio stream. Keys are matched case-insensitively; values are
stripped, control characters dropped and cut to ``MAX_CHARS``.
"""

from __future__ import annotations

import av

TAGS = ("title", "artist", "album")
MAX_CHARS = 500


def media_tags(container: av.container.InputContainer) -> dict[str, str]:
    """``{"title": ..., "artist": ..., "album": ...}``, the tags the file has (maybe none)."""
    found: dict[str, str] = {}
    sources = [container.metadata] + [s.metadata for s in container.streams.audio[:1]]
    for metadata in sources:
        lowered = {str(k).lower(): v for k, v in (metadata or {}).items()}
        for tag in TAGS:
            value = _clean(lowered.get(tag))
            if value and tag not in found:
                found[tag] = value
    return found


def _clean(value) -> str:
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value if ch.isprintable() or ch == " ").strip()
    return text[:MAX_CHARS]
