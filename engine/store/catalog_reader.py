"""Reading the catalog at its manifest's generation: references, tombstones, statistics and
the segment indexes (:class:`CatalogReader`, a mixin of :class:`engine.catalog.Catalog`)."""

from __future__ import annotations

import numpy as np

from nanhu.engine.errors import NotFound
from nanhu.engine.store.catalog_records import COLUMNS, Reference, row_to_reference
from nanhu.engine.store.catalog_schema import segment_files
from nanhu.engine.store.postings import SegmentPostings
from nanhu.engine.store.vectors import FaissVectorIndex, VectorSegment


def audio_frames(seconds: float, frames_per_second: float) -> int:
    """Whole frames in ``seconds`` of audio, the chance model's catalog size. A sum of
    durations carries rounding error of its own order of summation, so a product within 1e-6
    of a whole frame counts as that frame: a catalog split into shards (whose seconds are
    summed per shard, then together) gets the same size as the catalog whole."""
    return int(seconds * frames_per_second + 1e-6)


class CatalogReader:
    """The catalog's reads. The host provides ``path``, ``manifest``, ``generation``,
    ``audio_params``, ``_db`` (the metadata connection), the ``_postings`` / ``_vectors``
    caches and :meth:`conflicts` (:class:`engine.store.catalog_conflicts.ConflictsMixin`)."""

    _VISIBLE = "generation <= ? AND (deleted_generation IS NULL OR deleted_generation > ?)"

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        g = self.generation
        return self._db.execute(sql.replace("{visible}", self._VISIBLE), (g, g, *args)).fetchall()

    def get(self, ref_id: str) -> Reference:
        rows = self._query(f"SELECT {COLUMNS} FROM refs WHERE {{visible}} AND ref_id = ?", (ref_id,))
        if not rows:
            raise NotFound(f"no reference with id {ref_id!r} in {self.path}")
        return row_to_reference(rows[0])

    def by_ordinals(self, ordinals: np.ndarray) -> dict[int, Reference]:
        wanted = sorted({int(o) for o in np.asarray(ordinals).tolist()})
        out: dict[int, Reference] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT {COLUMNS} FROM refs WHERE {{visible}} AND ordinal IN ({marks})", tuple(chunk)
            ):
                out[row[0]] = row_to_reference(row)
        return out

    def reference_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(ordinals int64[r], frames int64[r]): every visible reference, by ordinal, with its
        length in audio frames (``int(duration_s * frames_per_second)``, the chance model's
        reference size), read in one query a generation (then kept) so that matching needs no
        per-query lookup."""
        cached = getattr(self, "_reference_frames", None)
        if cached is not None and cached[0] == self.generation:
            return cached[1], cached[2]
        rows = self._query("SELECT ordinal, duration_s FROM refs WHERE {visible} ORDER BY ordinal")
        table = np.array(rows, np.float64).reshape(-1, 2)
        fps = self.audio_params.frames_per_second
        # truncation toward zero, as int() of the non-negative product
        ordinals, frames = table[:, 0].astype(np.int64), (table[:, 1] * fps).astype(np.int64)
        self._reference_frames = (self.generation, ordinals, frames)
        return ordinals, frames

    def list(self, *, owner: str | None = None, limit: int = 1000, offset: int = 0,
             after_id: str | None = None) -> list[Reference]:
        sql = f"SELECT {COLUMNS} FROM refs WHERE {{visible}}"
        args: list = []
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        if after_id is not None:
            sql += " AND ref_id > ?"
            args.append(after_id)
        sql += " ORDER BY ref_id LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [row_to_reference(row) for row in self._query(sql, tuple(args))]

    def find_digest(self, digest: str) -> Reference | None:
        rows = self._query(f"SELECT {COLUMNS} FROM refs WHERE {{visible}} AND digest = ?", (digest,))
        return row_to_reference(rows[0]) if rows else None

    def deleted_ordinals(self) -> np.ndarray:
        """Ordinals tombstoned at this generation whose postings are not yet compacted away."""
        g = self.generation
        rows = self._db.execute(
            "SELECT ordinal FROM refs WHERE deleted_generation IS NOT NULL "
            "AND deleted_generation <= ?", (g,)
        ).fetchall()
        return np.array(sorted(r[0] for r in rows), np.uint32)

    def stats(self) -> dict:
        row = self._query(
            "SELECT COUNT(*), COALESCE(SUM(duration_s), 0), COALESCE(SUM(n_hashes), 0), "
            "COALESCE(SUM(n_keyframes), 0), COALESCE(SUM(n_hashes > 0), 0), "
            "COALESCE(SUM(n_keyframes > 0), 0), COALESCE(SUM(owner = ''), 0) FROM refs "
            "WHERE {visible}"
        )[0]
        files = [self.path / f for f in segment_files(self.manifest)]
        peak_bytes = sum(s["bytes"] for s in self.manifest.get("audio_peaks", []))
        audio_bytes = sum(s["bytes"] for s in self.manifest["audio_segments"]) + peak_bytes
        video_bytes = sum(s["bytes"] + s.get("graph_bytes", 0)
                          for s in self.manifest["video_segments"])
        video_bytes += sum(s["bytes"] for s in self.manifest.get("video_compact", []))
        video_bytes += (self.manifest.get("video_quantiser") or {}).get("bytes", 0)
        hours = row[1] / 3600.0
        return {
            "catalog": str(self.path), "format_version": self.manifest["version"],
            "generation": self.generation, "references": row[0],
            "audio_references": row[4], "video_references": row[5],
            "unowned_references": row[6],
            "held_conflicts": sum(c.held for c in self.conflicts()),
            "hours": round(hours, 4), "audio_hashes": row[2], "keyframes": row[3],
            "audio_segments": len(self.manifest["audio_segments"]),
            "video_segments": len(self.manifest["video_segments"]),
            "tombstones": int(self.deleted_ordinals().size),
            "audio_index_bytes": audio_bytes, "audio_peak_bytes": peak_bytes,
            "video_index_bytes": video_bytes,
            "index_bytes_per_hour": round((audio_bytes + video_bytes) / hours) if hours else 0,
            "files_present": all(f.exists() for f in files),
            "audio_params": self.manifest["audio_params_tag"],
            "video_params": self.manifest["video_params_tag"],
        }

    def postings(self) -> SegmentPostings:
        if self._postings is None:
            self._postings = SegmentPostings(
                [self.path / s["file"] for s in self.manifest["audio_segments"]]
            )
        return self._postings

    def vectors(self) -> FaissVectorIndex:
        if self._vectors is None:
            entries = self.manifest["video_segments"]
            self._vectors = FaissVectorIndex(
                [VectorSegment(self.path / s["file"]) for s in entries],
                graphs=[self.path / s["graph"] if s.get("graph") else None for s in entries],
                compact=self.compact_segments(),
            )
        return self._vectors

    def local_index(self):
        """The references' local features (:class:`engine.video.verify.LocalIndex`), read once
        per set of local-feature segments the manifest names."""
        from nanhu.engine.store.local_features import read_local_segment
        from nanhu.engine.video.local import LocalParams
        from nanhu.engine.video.verify import LocalIndex

        files = tuple(s["file"] for s in self.manifest.get("video_local", []))
        cached = getattr(self, "_local_index", None)
        if cached is None or cached[0] != files:
            features: dict = {}
            for name in files:
                features.update(read_local_segment(self.path / name,
                                                   params_version=LocalParams().version))
            self._local_index = cached = (files, LocalIndex(features))
        return cached[1]

    def reference_peaks(self):
        """The references' stored peaks (:class:`engine.store.audio_peaks.ReferencePeaks`),
        mapped once per set of reference-peak segments the manifest names."""
        from nanhu.engine.store.audio_peaks import ReferencePeaks

        files = tuple(s["file"] for s in self.manifest.get("audio_peaks", []))
        cached = getattr(self, "_reference_peaks", None)
        if cached is None or cached[0] != files:
            self._reference_peaks = cached = (files, ReferencePeaks(
                [self.path / name for name in files]))
        return cached[1]

    def quantiser(self):
        """The trained :class:`engine.store.vectors_compact.Quantiser`, or None below
        :data:`engine.store.vectors_compact.COMPACT_MIN_VECTORS` keyframes."""
        from nanhu.engine.store.vectors_compact import Quantiser

        entry = self.manifest.get("video_quantiser")
        if not entry:
            return None
        if getattr(self, "_quantiser", None) is None or self._quantiser[0] != entry["file"]:
            self._quantiser = (entry["file"], Quantiser.read(self.path / entry["file"]))
        return self._quantiser[1]

    def compact_segments(self) -> list:
        """The manifest's :class:`engine.store.vectors_compact_segment.CompactSegment` s."""
        from nanhu.engine.store.vectors_compact_segment import CompactSegment

        entries = self.manifest.get("video_compact", [])
        if not entries:
            return []
        quantiser = self.quantiser()
        return [CompactSegment(self.path / s["file"], quantiser) for s in entries]

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio of the visible works that have audio (the chance model's catalog
        size, :attr:`total_audio_frames`, in seconds)."""
        return float(self._query("SELECT COALESCE(SUM(duration_s), 0) FROM refs WHERE {visible} "
                                 "AND n_hashes > 0")[0][0])

    @property
    def total_audio_frames(self) -> int:
        return audio_frames(self.audio_seconds, self.audio_params.frames_per_second)
