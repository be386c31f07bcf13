"""Nanhu's library core: decoding, fingerprints, indexes, matching. No gRPC, no CLI state.

Typical use::

    from nanhu.engine import Catalog, Matcher, fingerprint_media

    with Catalog("var/catalog", writable=True, create=True) as catalog:
        catalog.add("song-1", fingerprint_media("song.mp3"), title="Song 1")
        catalog.commit()
    matches = Matcher(Catalog("var/catalog")).match(fingerprint_media("clip.mp4", query=True))
"""

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog, Reference
from nanhu.engine.errors import NanhuError
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.matcher import Match, Matcher

__all__ = [
    "AudioParams", "Catalog", "Fingerprint", "Match", "Matcher", "NanhuError", "Reference",
    "fingerprint_media",
]
