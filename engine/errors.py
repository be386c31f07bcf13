"""The one exception hierarchy of Nanhu.

Every error the engine raises on purpose is a :class:`NanhuError`. Front ends map them once:
``server/`` to gRPC status codes, the CLI to exit codes. The message is written for the user:
it says what went wrong and where (file, reference id, catalog path).
"""

from __future__ import annotations


class NanhuError(Exception):
    """Root of every error Nanhu raises on purpose."""


class MediaError(NanhuError):
    """A file or byte stream cannot be decoded, or holds nothing to fingerprint."""


class EmptyMediaError(MediaError):
    """Media decodes but holds nothing to fingerprint (silence, zero frames, 0 s)."""


class NotFound(NanhuError):
    """A reference id, file or catalog does not exist."""


class MediaNotFound(MediaError, NotFound):
    """A media file that does not exist: a media error (it cannot be fingerprinted) whose exit
    code is not-found's (4), as the README documents."""


class AlreadyExists(NanhuError):
    """A reference id, or the same content (by digest), is already registered."""

    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class CatalogLocked(NanhuError):
    """Another process holds the catalog's single-writer lock."""


class ShardUnavailable(NanhuError):
    """A shard of a cluster catalog has no live writer (or replica) just now; nothing was
    changed there, and the same call may succeed once the shard is back."""


class CatalogCorrupt(NanhuError):
    """On-disk catalog files are missing, truncated or of an unknown format version."""


class CatalogMoved(NanhuError):
    """The catalog's state moved under a query that read it first (a cluster view learns its
    shards' new commits, or a lost shard, with the query's calls): run the query again, on the
    new state. The matcher does."""


class VersionMismatch(NanhuError):
    """A fingerprint or file was made with parameters of another format version."""


class LimitExceeded(NanhuError):
    """A size, duration or concurrency limit was exceeded."""


class BudgetExceeded(LimitExceeded):
    """A job used more CPU time or memory than its budget and was stopped; ``budget`` says which
    (``"cpu"`` or ``"memory"``). The same input would do it again: not worth a retry."""

    def __init__(self, message: str, *, budget: str = "") -> None:
        super().__init__(message)
        self.budget = budget


class InvalidArgument(NanhuError):
    """A caller passed a value that cannot be used (bad id, bad range, bad option)."""


class InvalidState(NanhuError):
    """The thing is not in a state that allows this (a claim already released, a status
    change the claim's history does not allow)."""


class PermissionDenied(NanhuError):
    """The caller may not do this (wrong role or not the owner)."""


class Unauthenticated(NanhuError):
    """The caller did not present a valid key."""
