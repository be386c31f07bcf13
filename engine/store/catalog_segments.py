"""Segment and manifest writing: new segments of a commit, tiered merges of audio segments,
compaction, and the write-temp-fsync-rename protocol every file of the catalog goes through
(:class:`SegmentsMixin`, a mixin of :class:`engine.catalog.Catalog`)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from nanhu.engine.audio.keys import KEY_BITS
from nanhu.engine.store import vectors as vector_store
from nanhu.engine.store import vectors_compact as compact_store
from nanhu.engine.store import vectors_compact_segment as compact_segment
from nanhu.engine.store.audio_peaks import merge_peak_segments, write_peak_segment
from nanhu.engine.store.catalog_schema import manifest_version, segment_files
from nanhu.engine.store.postings import MAX_SEGMENT_FRAMES, Segment
from nanhu.engine.store.postings_write import merge_segments, write_segment
from nanhu.engine.store.vectors import VectorSegment, write_vector_segment

log = logging.getLogger("nanhu.engine.catalog")

#: a size tier holding this many audio segments is merged into one (tiered, log-structured:
#: a posting is rewritten about log_8(catalog / batch) times over its life)
TIER_FANOUT = 8


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def full_tier(entries: list[dict]) -> list[dict]:
    """The smallest size tier holding ``TIER_FANOUT`` entries (tier ``t``: ``8^t .. 8^(t+1)``
    items, the entries' ``count``), or an empty list."""
    tiers: dict[int, list[dict]] = {}
    for entry in entries:
        tiers.setdefault(max(0, int(entry["count"]).bit_length() // 3), []).append(entry)
    full = [t for t, group in sorted(tiers.items()) if len(group) >= TIER_FANOUT]
    return tiers[full[0]] if full else []


class SegmentsMixin:
    """The host provides ``path``, ``manifest``, ``generation``, ``has_staged``, ``_db``,
    ``_staged_refs``, the ``_postings`` / ``_vectors`` caches, :meth:`commit`,
    :meth:`deleted_ordinals`, :meth:`_load_manifest` and :meth:`_require_writer`."""

    def _write_new_segments(self, manifest: dict, g: int, ordinals: list[int]) -> None:
        audio = [(o, r["fp"].audio) for o, r in zip(ordinals, self._staged_refs)
                 if r["fp"].audio is not None and len(r["fp"].audio)]
        if audio:
            keys = np.concatenate([lm.hashes for _, lm in audio])
            ords = np.concatenate([np.full(len(lm), o, np.uint32) for o, lm in audio])
            frames = np.concatenate([lm.frames for _, lm in audio])
            name = f"audio/seg-{g:08d}.pst"
            size = self._write_file(
                name, lambda p: write_segment(p, keys, ords, frames, key_bits=KEY_BITS))
            manifest["audio_segments"].append({"file": name, "count": int(keys.size),
                                               "bytes": size})
            self._merge_tiers(manifest, g)
        peaks = [(o, r["fp"].reference_peaks) for o, r in zip(ordinals, self._staged_refs)
                 if r["fp"].reference_peaks is not None and len(r["fp"].reference_peaks)]
        if peaks:
            name = f"audio/seg-{g:08d}.apk"
            size = self._write_file(name, lambda p: write_peak_segment(
                p, [(o, pk.frame, pk.log_freq) for o, pk in peaks]))
            manifest.setdefault("audio_peaks", []).append(
                {"file": name, "count": int(sum(len(pk) for _, pk in peaks)), "bytes": size})
            self._merge_peak_tiers(manifest, g)
        video = [(o, r["fp"].video) for o, r in zip(ordinals, self._staged_refs)
                 if r["fp"].video is not None and len(r["fp"].video)]
        if video:
            tags = {v.params_tag for _, v in video}
            if not manifest.get("video_params_tag"):
                manifest["video_params_tag"] = tags.pop()
            vectors = np.concatenate([v.vectors for _, v in video])
            ords = np.concatenate([np.full(len(v), o, np.uint32) for o, v in video])
            times = np.concatenate([v.times_s for _, v in video])
            self._write_new_video(manifest, g, vectors, ords, times)
        local = [(o, v.local) for o, v in video if v.local is not None and len(v.local)]
        if local:
            self._write_new_local(manifest, g, local)

    def _compact_local(self, manifest: dict, g: int, dead: np.ndarray) -> None:
        """Compaction: the local-feature segments become one, less the ``dead`` ordinals."""
        from nanhu.engine.store.local_features import read_local_segment
        from nanhu.engine.video.local import LocalParams

        entries = manifest.get("video_local", [])
        if not entries:
            return
        version = LocalParams().version
        features: dict = {}
        for entry in entries:
            features.update(read_local_segment(self.path / entry["file"],
                                               params_version=version))
        dead_set = {int(o) for o in dead}
        manifest["video_local"] = []
        items = sorted((o, f) for o, f in features.items() if o not in dead_set)
        if items:
            self._write_new_local(manifest, g, items)

    def _write_new_local(self, manifest: dict, g: int, items: list) -> None:
        """The references' ORB keyframes (engine.video.local), one file a commit; never merged
        (a few per cent of the video side's bytes); a deleted reference's are filtered at query
        time like its keyframes."""
        from nanhu.engine.store.local_features import write_local_segment
        from nanhu.engine.video.local import LocalParams

        version = LocalParams().version
        name = f"video/seg-{g:08d}.vlf"
        size = self._write_file(name, lambda p: write_local_segment(
            p, items, params_version=version))
        manifest.setdefault("video_local", []).append(
            {"file": name, "keyframes": int(sum(len(f) for _, f in items)), "bytes": size,
             "params_version": version})

    def _write_new_video(self, manifest: dict, g: int, vectors: np.ndarray, ords: np.ndarray,
                         times: np.ndarray) -> None:
        """New keyframes: compact codes once the catalog has a quantiser, float rows before;
        the commit that brings the float rows to ``COMPACT_MIN_VECTORS`` trains the quantiser
        and codes every row (a one-off of about a minute on 2 cores, logged)."""
        quantiser = self._manifest_quantiser(manifest)
        if quantiser is not None:
            name = f"video/seg-{g:08d}.vcx"
            size = self._write_file(name, lambda p: compact_segment.write_compact_segment(
                p, quantiser, [(vectors, None, ords, times)]))
            manifest.setdefault("video_compact", []).append(
                {"file": name, "count": int(ords.size), "bytes": size})
            return
        if (sum(s["count"] for s in manifest["video_segments"]) + ords.size
                >= compact_store.COMPACT_MIN_VECTORS):
            self._compact_video(manifest, g, np.zeros(0, np.uint32),
                                extra=(vectors, ords, times))
            return
        manifest["video_segments"].append(
            self._write_vector_segment(f"video/seg-{g:08d}.vec", vectors, ords, times))

    def _manifest_quantiser(self, manifest: dict):
        entry = manifest.get("video_quantiser")
        if not entry:
            return None
        if entry == (self.manifest.get("video_quantiser") or {}):
            return self.quantiser()
        return compact_store.Quantiser.read(self.path / entry["file"])

    def _compact_video(self, manifest: dict, g: int, dead: np.ndarray, *,
                       extra: tuple | None = None) -> None:
        """(Re)train the quantiser on the catalog's keyframes and write them all, less the
        ``dead`` ordinals, as one compact segment; the manifest then names no float segment.

        Training data: the float rows, and reconstructions of the compact rows (their exact
        vectors are not kept). The re-rank codebook of an existing quantiser is kept, so its
        codes are copied, never re-encoded. ``extra``: this commit's new float rows
        (vectors, ordinals, times), not yet in a segment."""
        import time as clock

        started = clock.perf_counter()
        floats = vector_store.merge_segments(
            [VectorSegment(self.path / s["file"]) for s in manifest["video_segments"]])
        if extra is not None:
            good = vector_store.sane_rows(extra[0], extra[2])
            floats = tuple(np.concatenate([a, b[good]]) if a.size else b[good]
                           for a, b in zip(floats, extra))
        compact = [compact_segment.CompactSegment(self.path / s["file"],
                                                self._manifest_quantiser(manifest))
                   for s in manifest.get("video_compact", [])]
        old = self._manifest_quantiser(manifest)
        float_alive = ~np.isin(floats[1], dead)
        alive = [~np.isin(c.ordinals, dead) for c in compact]
        total = int(float_alive.sum()) + sum(int(a.sum()) for a in alive)
        if total == 0:
            manifest["video_segments"], manifest["video_compact"] = [], []
            return
        rng = np.random.default_rng(g)
        share = min(1.0, compact_store.MAX_TRAIN / total)
        sample = [floats[0][float_alive][rng.random(int(float_alive.sum())) < share]]
        for segment, keep in zip(compact, alive):
            rows = np.nonzero(keep & (rng.random(len(segment)) < share))[0]
            sample.append(segment.reconstruct(rows))
        sample = [s for s in sample if s.size]
        quantiser = compact_store.Quantiser.train(
            np.concatenate(sample), rerank=old.rerank if old else None, seed=g, trained_on=total)
        qname = f"video/quantiser-{g:08d}.vqz"
        qsize = self._write_file(qname, quantiser.write)

        def blocks():
            if float_alive.any():
                yield (floats[0][float_alive], None, floats[1][float_alive],
                       floats[2][float_alive])
            for segment, keep in zip(compact, alive):
                for start in range(0, len(segment), 1 << 20):
                    rows = np.nonzero(keep[start:start + (1 << 20)])[0] + start
                    if rows.size:
                        yield (None, segment.codes[rows], segment.ordinals[rows],
                               segment.times_s[rows])

        name = f"video/seg-{g:08d}-c.vcx"
        size = self._write_file(name, lambda p: compact_segment.write_compact_segment(
            p, quantiser, blocks()))
        manifest["video_segments"] = []
        manifest["video_compact"] = [{"file": name, "count": total, "bytes": size}]
        manifest["video_quantiser"] = {"file": qname, "bytes": qsize, "trained_on": total,
                                       "nlist": int(quantiser.shortlist.nlist)}
        log.info("%s: %d keyframes coded compact (quantiser trained on %d rows) in %.1f s",
                 self.path, total, sum(len(s) for s in sample), clock.perf_counter() - started)

    def _merge_tiers(self, manifest: dict, g: int) -> None:
        """Merge audio segments of one size tier once it holds ``TIER_FANOUT`` of them.

        Tier ``t`` holds segments of ``8^t .. 8^(t+1)`` postings, so adding an hour to a large
        catalog rewrites only the small segments (cost in proportion to the hour, amortised),
        and a query searches O(log catalog) segments. Replaced files are removed once the new
        manifest is in place (:func:`engine.store.catalog_recovery.remove_unnamed`).
        """
        while True:
            group = full_tier(manifest["audio_segments"])
            if not group:
                return
            frames = sum(Segment(self.path / e["file"]).total_frames for e in group)
            if frames > MAX_SEGMENT_FRAMES:
                return  # at 19,000 h a segment is as large as positions allow: leave the tier
            name = f"audio/seg-{g:08d}-m{len(manifest['audio_segments']):03d}.pst"
            info = {}

            def merge(path: Path, group=group, info=info) -> int:
                info.update(merge_segments([self.path / e["file"] for e in group], path,
                                           key_bits=KEY_BITS))
                return info["bytes"]

            size = self._write_file(name, merge)
            _replace_group(manifest, "audio_segments", group,
                           {"file": name, "count": info["count"], "bytes": size})

    def _merge_peak_tiers(self, manifest: dict, g: int) -> None:
        """Merge reference-peak files of one size tier once it holds ``TIER_FANOUT`` of them
        (the postings' rule, :meth:`_merge_tiers`): one file a commit would leave a large
        catalog with thousands."""
        while True:
            group = full_tier(manifest["audio_peaks"])
            if not group:
                return
            name = f"audio/seg-{g:08d}-m{len(manifest['audio_peaks']):03d}.apk"
            info: dict = {}

            def merge(path: Path, group=group, info=info) -> int:
                info.update(merge_peak_segments([self.path / e["file"] for e in group], path))
                return info["bytes"]

            size = self._write_file(name, merge)
            _replace_group(manifest, "audio_peaks", group,
                           {"file": name, "count": info["peaks"], "bytes": size})

    def _compact_peaks(self, manifest: dict, g: int, dead: np.ndarray) -> None:
        """Compaction: the reference-peak files become one, less the ``dead`` ordinals."""
        sources = [self.path / e["file"] for e in manifest.get("audio_peaks", [])]
        if not sources:
            return
        name = f"audio/seg-{g:08d}.apk"
        info: dict = {}

        def merge(path: Path) -> int:
            info.update(merge_peak_segments(sources, path, drop_ordinals=dead))
            return info["bytes"]

        size = self._write_file(name, merge)
        manifest["audio_peaks"] = []
        if info["references"]:
            manifest["audio_peaks"].append({"file": name, "count": info["peaks"],
                                            "bytes": size})
        else:
            (self.path / name).unlink()

    def _write_vector_segment(self, name: str, vectors: np.ndarray, ords: np.ndarray,
                              times: np.ndarray) -> dict:
        """Write a vector segment (and, when it is large, its HNSW graph); its manifest entry.
        Both files are written before the manifest names them, like every segment."""
        size = self._write_file(name, lambda p: write_vector_segment(p, vectors, ords, times))
        entry = {"file": name, "count": int(ords.size), "bytes": size}
        if ords.size >= vector_store.HNSW_MIN_VECTORS:
            graph = name.removesuffix(".vec") + ".hnsw"
            entry["graph"] = graph
            entry["graph_bytes"] = self._write_file(
                graph, lambda p: vector_store.write_hnsw_graph(p, vectors))
        return entry

    def _write_file(self, name: str, writer) -> int:
        final = self.path / name
        tmp = final.with_name(final.name + ".tmp")
        size = writer(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return size

    def _write_manifest(self, manifest: dict) -> None:
        manifest["version"] = manifest_version(manifest)
        tmp = self.path / "manifest.json.tmp"
        with open(tmp, "w") as handle:
            json.dump(manifest, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / "manifest.json")
        fsync_dir(self.path)

    def compact(self) -> dict:
        """Merge all segments into one per modality and purge tombstoned references."""
        self._require_writer()
        if self.has_staged:
            self.commit()
        dead = self.deleted_ordinals()
        g = self.generation + 1
        manifest = json.loads(json.dumps(self.manifest))
        old_files = segment_files(manifest)
        sources = [self.path / s["file"] for s in manifest["audio_segments"]]
        manifest["audio_segments"] = []
        audio_postings = 0
        if sources:
            name = f"audio/seg-{g:08d}.pst"
            info: dict = {}

            def merge(path: Path) -> int:
                info.update(merge_segments(sources, path, key_bits=KEY_BITS, drop_ordinals=dead))
                return info["bytes"]

            size = self._write_file(name, merge)
            audio_postings = info["count"]
            if audio_postings:
                manifest["audio_segments"].append({"file": name, "count": audio_postings,
                                                   "bytes": size})
            else:
                (self.path / name).unlink()
        segments = [VectorSegment(self.path / s["file"]) for s in manifest["video_segments"]]
        video_rows = sum(s["count"] for s in manifest["video_segments"]
                         + manifest.get("video_compact", []))
        if manifest.get("video_quantiser") or video_rows >= compact_store.COMPACT_MIN_VECTORS:
            self._compact_video(manifest, g, dead)
            segments = []
        else:
            manifest["video_segments"] = []
        if segments:
            # Unusable rows (another dimension, non-unit norms, bad times) are dropped, logged.
            vectors, ords, times = vector_store.merge_segments(segments)
            alive = ~np.isin(ords, dead)
            if alive.any():
                manifest["video_segments"].append(self._write_vector_segment(
                    f"video/seg-{g:08d}.vec", vectors[alive], ords[alive], times[alive]))
        self._compact_local(manifest, g, dead)
        self._compact_peaks(manifest, g, dead)
        manifest["generation"] = g
        manifest["committed_at"] = time.time()
        with self._db:
            # Rows stay until the manifest no longer names their postings; purged after.
            self._write_manifest(manifest)
        self._load_manifest()
        self._postings = None
        self._vectors = None
        with self._db:
            self._db.executemany("DELETE FROM refs WHERE ordinal = ?", [(int(o),) for o in dead])
            self._db.executemany("DELETE FROM conflicts WHERE ordinal = ? OR other_ordinal = ?",
                                 [(int(o), int(o)) for o in dead])
            self._db.execute("DELETE FROM owner_policies WHERE replaced_generation IS NOT NULL "
                             "AND replaced_generation <= ?", (g,))
        for file in old_files:
            (self.path / file).unlink(missing_ok=True)
        return {"generation": g, "purged_references": int(dead.size),
                "audio_postings": int(audio_postings),
                "video_vectors": sum(s["count"] for s in manifest["video_segments"]
                                     + manifest.get("video_compact", []))}


def _replace_group(manifest: dict, key: str, group: list[dict], merged: dict) -> None:
    """In ``manifest[key]``, the ``group`` of entries merged into one file becomes its entry."""
    names = {e["file"] for e in group}
    manifest[key] = [e for e in manifest[key] if e["file"] not in names] + [merged]
