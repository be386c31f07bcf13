"""Where the benchmark corpora live on disk, and the checksum their manifests record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """The media cache: ``$NANHU_CACHE``, else ``~/.cache/nanhu``."""
    return Path(os.environ.get("NANHU_CACHE") or Path.home() / ".cache" / "nanhu")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
