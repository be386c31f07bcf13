"""What to ingest: a folder of media files, or a manifest (CSV or JSON Lines) naming them.

A manifest has one row per file. Columns (CSV header names, or JSON object keys):

- ``path`` (required): the media file, relative to the manifest's folder unless absolute;
- ``id``: the reference id (default: the file's stem);
- ``title``: the title (default: the file's stem);
- ``owner``: the owning tenant (default: ``--owner``);
- ``policy``: the work's policy action, one of ``block``, ``monetize``, ``track``, ``review``
  (empty: no policy of its own), with its conditions in ``policy_modality`` (audio, video,
  both, any), ``policy_min_match_s``, ``policy_min_upload_share``,
  ``policy_min_reference_share`` (0..1), ``policy_exclude`` (ranges of the work, ``0-12.5;30-40``;
  in JSON also ``[[0, 12.5], [30, 40]]``) and ``policy_disabled`` (true/false); checked like the
  rest of the row (:func:`policy_fields`), and a ``policy_`` column this version does not know
  is refused rather than kept as metadata;
- any other column is kept as the reference's metadata (CSV values as strings, JSON values as
  they are); empty CSV cells are left out.

A folder is walked recursively in sorted order; hidden files and folders are skipped. Patterns
(shell globs) match the path relative to the folder when they contain ``/``, else the file
name. Without ``--include`` every file with a common media suffix is taken. A folder entry's id
is its relative path without the suffix, ``/`` written ``:`` and characters an id may not hold
written ``_`` after accents are dropped (``Album/01 Été.mp3`` -> ``Album:01_Ete``).

:class:`Source` yields :class:`Entry` items and :class:`Problem` items in input order, and runs
the same checks every time it is iterated: an unreadable row, a missing or unreadable file, a bad
id, a duplicate id (the first row keeps it). It streams: only the ids seen so far are held.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nanhu.engine.catalog import is_valid_reference_id  # the catalog's own rule for ids
from nanhu.engine.errors import InvalidArgument
from nanhu.engine.policy import Policy, parse_bool, parse_ranges

log = logging.getLogger(__name__)

#: suffixes taken from a folder when no ``--include`` pattern is given
MEDIA_SUFFIXES = (
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".amr", ".mka", ".wma",
    ".aif", ".aiff", ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".3gp", ".ts", ".mpg",
    ".mpeg", ".wmv", ".flv",
)
KNOWN_COLUMNS = ("path", "id", "title", "owner")
#: manifest column -> Policy field; ``policy`` is the action
POLICY_COLUMNS = {"policy": "action", "policy_modality": "modality",
                  "policy_min_match_s": "min_match_s", "policy_min_upload_share": "min_upload_share",
                  "policy_min_reference_share": "min_reference_share",
                  "policy_exclude": "excluded_ranges", "policy_disabled": "enabled"}
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9._:@+\-]")


@dataclass(frozen=True)
class Entry:
    """One file to register.

    ``line`` is the manifest line the row ends on (None for a folder entry); ``size`` and
    ``mtime_ns`` come from ``stat`` at validation and key the resume journal.
    """

    path: Path
    ref_id: str
    title: str
    owner: str = ""
    metadata: dict = field(default_factory=dict)
    #: the work's own policy in stored form (``{}``: none)
    policy: dict = field(default_factory=dict)
    line: int | None = None
    size: int = 0
    mtime_ns: int = 0
    #: a folder entry: its title defaults to the file's embedded title tag (:func:`tagged`)
    from_folder: bool = False


def tagged(entry: Entry, fp_meta: dict) -> tuple[str, dict]:
    """(title, metadata) of a folder entry given its fingerprint's ``meta``: the embedded title
    tag (else the file's stem) and the artist and album tags beside the entry's metadata. A
    manifest row keeps what it says."""
    tags = fp_meta.get("tags") if entry.from_folder else None
    if not tags:
        return entry.title, entry.metadata
    extra = {k: tags[k] for k in ("artist", "album") if tags.get(k)}
    return tags.get("title") or entry.title, {**entry.metadata, **extra}


@dataclass(frozen=True)
class Problem:
    """Why a manifest row (or a folder entry) cannot be ingested."""

    message: str
    line: int | None = None
    path: str | None = None
    ref_id: str | None = None

    def describe(self, source: Path) -> str:
        where = f"{source}:{self.line}" if self.line is not None else str(self.path or source)
        return f"{where}: {self.message}"


class ManifestInvalid(InvalidArgument):
    """The manifest holds problems; nothing was ingested."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def folder_id(relative: Path) -> str:
    """The reference id of a folder entry (see the module docstring)."""
    text = unicodedata.normalize("NFKD", relative.with_suffix("").as_posix())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))  # é -> e
    text = ":".join(_BAD_ID_CHARS.sub("_", part) for part in text.split("/"))
    return text.lstrip("._:@+-")[:200]


def _matches(relative: str, name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(relative if "/" in p else name, p) for p in patterns)


@dataclass
class _Row:
    """A parsed manifest row before the file and id checks."""

    line: int
    fields: dict | None
    problem: str | None = None


class Source:
    """A folder or a manifest file, iterated as entries and problems (checks included)."""

    def __init__(
        self, path: str | Path, *, include: list[str] | None = None,
        exclude: list[str] | None = None, owner: str = "",
    ) -> None:
        self.path = Path(path)
        self.include = list(include or [])
        self.exclude = list(exclude or [])
        self.owner = owner
        if self.path.is_dir():
            self.kind = "folder"
        elif not self.path.exists():
            raise InvalidArgument(f"{self.path}: no such folder or manifest")
        elif self.path.suffix.lower() == ".csv":
            self.kind = "csv"
        elif self.path.suffix.lower() in (".jsonl", ".ndjson"):
            self.kind = "jsonl"
        else:
            raise InvalidArgument(
                f"{self.path}: a source is a folder, a .csv or a .jsonl manifest"
            )
        if self.kind != "folder" and (self.include or self.exclude):
            raise InvalidArgument("--include and --exclude apply to folders, not to manifests")

    def nothing_found(self) -> str:
        """Why a source that yields nothing is refused, and what was looked for."""
        if self.kind != "folder":
            return f"{self.path}: the manifest lists no files"
        if self.include:
            looked_for = "files matching " + " or ".join(repr(p) for p in self.include)
        else:
            looked_for = "files ending in " + " ".join(MEDIA_SUFFIXES)
        excluded = f", less those matching {' or '.join(map(repr, self.exclude))}" if self.exclude else ""
        return (f"{self.path}: no media files found: looked for {looked_for}{excluded} in the folder "
                "and its subfolders (hidden ones skipped); is it the right folder? Take other names "
                "with --include PATTERN")

    def __iter__(self) -> Iterator[Entry | Problem]:
        first_line: dict[str, int | str] = {}
        for item in self._entries():
            if isinstance(item, Entry):
                where = item.line if item.line is not None else str(item.path)
                if item.ref_id in first_line:
                    first = first_line[item.ref_id]
                    at = f"line {first}" if isinstance(first, int) else first
                    yield Problem(f"duplicate id {item.ref_id!r} (first used at {at})",
                                  item.line, str(item.path), item.ref_id)
                    continue
                first_line[item.ref_id] = where
            yield item

    # --- folders -------------------------------------------------------------------------
    def _entries(self) -> Iterator[Entry | Problem]:
        if self.kind == "folder":
            yield from self._walk(self.path, Path())
            return
        rows = self._csv_rows() if self.kind == "csv" else self._jsonl_rows()
        for row in rows:
            if row.problem is not None:
                yield Problem(row.problem, row.line)
            else:
                yield self._row_entry(row)

    def _walk(self, folder: Path, relative: Path) -> Iterator[Entry | Problem]:
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Problem(f"cannot list folder ({exc.strerror})", path=str(folder))
            return
        for child in children:
            if child.name.startswith("."):
                continue
            rel = relative / child.name
            if child.is_dir(follow_symlinks=False):
                yield from self._walk(Path(child.path), rel)
                continue
            rel_text = rel.as_posix()
            if self.include:
                if not _matches(rel_text, child.name, self.include):
                    continue
            elif Path(child.name).suffix.lower() not in MEDIA_SUFFIXES:
                continue
            if self.exclude and _matches(rel_text, child.name, self.exclude):
                continue
            ref_id = folder_id(rel)
            yield self._checked(Path(child.path), ref_id, Path(child.name).stem, self.owner,
                                {"source": rel_text}, None, from_folder=True)

    # --- manifests -----------------------------------------------------------------------
    def _csv_rows(self) -> Iterator[_Row]:
        # surrogateescape keeps undecodable bytes as markers, so one bad row is one problem
        with open(self.path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                yield _Row(1, None, "empty manifest: no header row")
                return
            except csv.Error as exc:
                yield _Row(reader.line_num, None, f"unreadable header ({exc})")
                return
            header = [h.strip() for h in header]
            if "path" not in header:
                yield _Row(reader.line_num, None,
                           f"header has no 'path' column (columns: {', '.join(header)})")
                return
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates or "" in header:
                what = f"repeated columns {duplicates}" if duplicates else "an unnamed column"
                yield _Row(reader.line_num, None, f"header has {what}")
                return
            unknown = _unknown_policy_columns(header)
            if unknown:
                yield _Row(reader.line_num, None, unknown)
                return
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield _Row(reader.line_num, None, f"unreadable row ({exc})")
                    continue
                line = reader.line_num
                if not any(v.strip() for v in values):
                    continue  # blank line
                if any(_has_surrogates(v) for v in values):
                    yield _Row(line, None, "unreadable row (not UTF-8 text)")
                    continue
                if len(values) != len(header):
                    yield _Row(line, None, f"unreadable row: {len(values)} fields, the header has "
                                           f"{len(header)}")
                    continue
                fields = {name: value for name, value in zip(header, values) if value != ""}
                yield _Row(line, fields)

    def _jsonl_rows(self) -> Iterator[_Row]:
        with open(self.path, "rb") as handle:
            for line, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    fields = json.loads(raw.decode("utf-8-sig" if line == 1 else "utf-8"))
                except UnicodeDecodeError:
                    yield _Row(line, None, "unreadable row (not UTF-8 text)")
                    continue
                except ValueError as exc:
                    yield _Row(line, None, f"unreadable row (not JSON: {exc})")
                    continue
                if not isinstance(fields, dict):
                    yield _Row(line, None, "unreadable row (not a JSON object)")
                    continue
                bad = [k for k in KNOWN_COLUMNS if k in fields and not isinstance(fields[k], str)]
                unknown = _unknown_policy_columns(fields)
                if unknown:
                    yield _Row(line, None, f"unreadable row ({unknown})")
                    continue
                if bad:
                    yield _Row(line, None, f"unreadable row ({', '.join(bad)} must be text)")
                    continue
                yield _Row(line, fields)

    def _row_entry(self, row: _Row) -> Entry | Problem:
        fields = dict(row.fields or {})
        text = fields.pop("path", "").strip()
        if not text:
            return Problem("no path", row.line, ref_id=fields.get("id"))
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self.path.parent / path
        ref_id = fields.pop("id", "").strip() or path.stem
        title = fields.pop("title", "").strip() or path.stem
        owner = fields.pop("owner", "").strip() or self.owner
        columns = {name: fields.pop(name) for name in POLICY_COLUMNS if name in fields}
        try:
            policy = policy_fields(columns)
        except InvalidArgument as exc:
            return Problem(str(exc), row.line, str(path), ref_id)
        return self._checked(path, ref_id, title, owner, fields, row.line, policy)

    def _checked(self, path: Path, ref_id: str, title: str, owner: str, metadata: dict,
                 line: int | None, policy: dict | None = None, *,
                 from_folder: bool = False) -> Entry | Problem:
        if not is_valid_reference_id(ref_id):
            return Problem(
                f"bad id {ref_id!r}: use 1-200 letters, digits and ._:@+- starting with a letter "
                "or digit", line, str(path), ref_id)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Problem("missing file" + (" (dangling link)" if path.is_symlink() else ""),
                           line, str(path), ref_id)
        except OSError as exc:
            return Problem(f"cannot read file ({exc.strerror})", line, str(path), ref_id)
        if not path.is_file():
            return Problem("not a regular file", line, str(path), ref_id)
        if not os.access(path, os.R_OK):
            return Problem("cannot read file (permission denied)", line, str(path), ref_id)
        return Entry(path=path.absolute(), ref_id=ref_id, title=title, owner=owner,
                     metadata=metadata, policy=policy or {}, line=line, size=stat.st_size,
                     mtime_ns=stat.st_mtime_ns, from_folder=from_folder)


def _unknown_policy_columns(names) -> str | None:
    unknown = sorted(n for n in names if n.startswith("policy") and n not in POLICY_COLUMNS)
    if not unknown:
        return None
    return (f"unknown policy column(s) {', '.join(map(repr, unknown))} (known: "
            f"{', '.join(POLICY_COLUMNS)})")


def policy_fields(columns: dict) -> dict:
    """A row's policy columns (CSV text, or JSON values) as the stored policy (``{}``: none);
    InvalidArgument names the column and what it takes."""
    values = {k: v.strip() if isinstance(v, str) else v for k, v in columns.items()}
    values = {k: v for k, v in values.items() if v not in ("", None)}
    if not values:
        return {}
    if "policy" not in values:
        raise InvalidArgument(f"{', '.join(sorted(values))} without a 'policy' column (the action: "
                              "block, monetize, track or review)")
    data: dict = {}
    for column, value in values.items():
        name = POLICY_COLUMNS[column]
        try:
            if column == "policy_exclude":
                value = parse_ranges(value) if isinstance(value, str) else value
            elif column == "policy_disabled":
                value = not parse_bool(value, what="value")
            data[name] = value
            Policy.from_dict({"action": "track", name: value} if name != "action" else data)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{column}: {exc}") from None
    policy = Policy.from_dict(data)
    return policy.to_dict() if policy else {}


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


@dataclass
class Validation:
    """What a full pass over a source found."""

    entries: int = 0
    total_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: problems beyond the first ``max_problems`` are counted, not kept
    more_problems: int = 0


def validate(source: Source, *, max_problems: int = 10_000) -> Validation:
    """One streaming pass: count the good entries and their bytes, collect every problem."""
    result = Validation()
    for item in source:
        if isinstance(item, Problem):
            if len(result.problems) < max_problems:
                result.problems.append(item)
            else:
                result.more_problems += 1
        else:
            result.entries += 1
            result.total_bytes += item.size
    return result
