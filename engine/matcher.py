"""Matching a query fingerprint against a catalog: audio and video segments, fused.

``Matcher.match(fp)`` returns every reference the query copies, one :class:`Match` per copied
stretch, best first. Audio (engine.audio.align) and video (engine.video.align) each produce
aligned :class:`~engine.segments.Segment` s; :func:`fuse` merges an audio and a video segment
of the same reference that overlap in query time into one ``audio+video`` match; each is then
judged against its work's policy and the screening call's floor (:mod:`engine.verdict`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from nanhu.engine.audio.align import AudioMatchParams, align_audio, join_windows
from nanhu.engine.audio.kernels import merge_votes, picked_order
from nanhu.engine.audio.keys import Landmarks, QueryPeaks
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.audio.shortlist import hits_for, reference_votes, shortlist, shortlist_mask
from nanhu.engine.audio.verify import Hypothesis, verified_segments
from nanhu.engine.audio.windows import (
    distinct_keys,
    one_window,
    query_seconds,
    subset,
    window_ids,
)
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import CatalogCorrupt, CatalogMoved
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.policy import ScreenFloor
from nanhu.engine.segments import Segment, covered_s
from nanhu.engine.verdict import Match, judge

__all__ = ["Match", "Matcher", "fuse"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def fuse(segments: list[Segment]) -> list[Segment]:
    """Merge audio and video segments of one reference that overlap in query time.

    The fused segment spans both, keeps the better-scored side's speed, and its expected chance
    matches are the product of the sides' (independent evidence), which on the shared score
    scale (:mod:`engine.segments`) is ``1 - (1 - a) * (1 - v)``.
    """
    audio = [s for s in segments if s.modality == "audio"]
    video = [s for s in segments if s.modality == "video"]
    used_video: set[int] = set()
    out: list[Segment] = []
    for a in audio:
        partner = None
        for i, v in enumerate(video):
            if i in used_video or v.reference != a.reference:
                continue
            if a.query_overlap_s(v) > 0.3 * min(a.query_duration_s, v.query_duration_s):
                partner = i
                break
        if partner is None:
            out.append(a)
            continue
        used_video.add(partner)
        v = video[partner]
        best = a if a.score >= v.score else v
        out.append(Segment(
            reference=a.reference, modality="audio+video",
            query_start_s=min(a.query_start_s, v.query_start_s),
            query_end_s=max(a.query_end_s, v.query_end_s),
            reference_start_s=min(a.reference_start_s, v.reference_start_s),
            reference_end_s=max(a.reference_end_s, v.reference_end_s),
            speed=best.speed, score=1.0 - (1.0 - a.score) * (1.0 - v.score),
            # each side's own length in the upload, for the match's reason line
            evidence={"audio": {**a.evidence, "matched_s": round(a.query_duration_s, 3)},
                      "video": {**v.evidence, "matched_s": round(v.query_duration_s, 3)}},
        ))
    out.extend(v for i, v in enumerate(video) if i not in used_video)
    return out


class Matcher:
    """Answers queries against one catalog; call :meth:`refresh` to see new commits."""

    def __init__(self, catalog: Catalog, *, audio_match: AudioMatchParams | None = None,
                 video_match=None) -> None:
        self.catalog = catalog
        self.audio_match = audio_match or AudioMatchParams()
        self.video_match = video_match
        self._state_generation = -1

    def refresh(self) -> bool:
        return self.catalog.refresh()

    def _ensure_state(self) -> None:
        if self._state_generation == self.catalog.generation:
            return
        for attempt in range(3):
            try:
                self._deleted = self.catalog.deleted_ordinals()
                self._catalog_frames = self.catalog.total_audio_frames
                self._postings = self.catalog.postings()
                self._stop_key_postings = self.audio_match.stop_key_cap(len(self._postings))
                self._reference_peaks = self._peak_store()
                break
            except (CatalogCorrupt, FileNotFoundError):
                # A compaction replaced the segments between reading the manifest and mapping
                # them: read the new manifest and try again.
                if attempt == 2 or not self.catalog.refresh():
                    raise
        self._state_generation = self.catalog.generation

    def _peak_store(self):
        """The catalog's stored reference peaks for the peak check, or None (check off, or a
        catalog without them: written before format 5, or a view that does not carry them)."""
        manifest = getattr(self.catalog, "manifest", None)
        if not (self.audio_match.verify and isinstance(manifest, dict)
                and manifest.get("audio_peaks")):
            return None
        try:
            return self.catalog.reference_peaks()
        except (CatalogCorrupt, OSError) as exc:  # damage on disk: votes alone, said loudly
            log.warning("%s; matching on votes alone (no peak check) until `nanhu repair`",
                        exc)
            return None

    def _again(self, run: Callable[[], T]) -> T:
        """``run()``, again while the catalog says its state moved under it (a cluster view
        learns a shard's new commit, or loses a shard, with the query's own calls)."""
        for attempt in range(5):
            try:
                return run()
            except CatalogMoved:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def segments(self, fp: Fingerprint) -> list[Segment]:
        """Aligned (unfused) segments of every modality the query carries."""
        return self._again(lambda: self._segments(fp))

    def _segments(self, fp: Fingerprint) -> list[Segment]:
        self.catalog.check_fingerprint(fp, what="query fingerprint")
        self._ensure_state()
        out: list[Segment] = []
        if (fp.audio is not None and len(fp.audio)) or (fp.audio_peaks is not None
                                                          and len(fp.audio_peaks)):
            out.extend(self._audio_segments(fp))
        if fp.video is not None and len(fp.video):
            out.extend(self._video_segments(fp))
        return out

    def match(self, fp: Fingerprint, *, floor: ScreenFloor | None = None) -> list[Match]:
        """Every copied stretch the catalog knows of, best first, each with the action its
        work's policy takes; ``floor`` holds the screening call's own thresholds (the
        platform's floor, :mod:`engine.policy`)."""
        return self._again(lambda: self._match(fp, floor or ScreenFloor()))

    def _match(self, fp: Fingerprint, floor: ScreenFloor) -> list[Match]:
        fused = fuse(self._segments(fp))
        refs = self.catalog.by_ordinals(np.array([s.reference for s in fused], np.int64))
        defaults = self.catalog.owner_policies() if fused else {}
        held = self.catalog.held_ranges() if fused else {}
        matches = []
        for seg in fused:
            reference = refs.get(seg.reference)
            if reference is None:  # deleted after the postings were mapped
                continue
            matches.extend(judge(seg, reference, defaults.get(reference.owner) if reference.owner
                                 else None, upload_duration_s=fp.duration_s, floor=floor,
                                 held=held.get(seg.reference, ())))
        matches.sort(key=lambda m: (-m.score, -(m.query_end_s - m.query_start_s)))
        return matches

    def _audio_segments(self, fp: Fingerprint) -> list[Segment]:
        """Audio segments of a query, matched in windows of ``audio_match.window_s`` of query
        time (overlapping by ``max_gap_s``) so that the work and memory of a long upload grow
        with its length, not with its length times its references'. Segments of one copy in
        consecutive windows are joined; every window is one more look at the catalog, so each
        segment's expected chance matches are multiplied by the number of windows.

        A query keyed on demand (``fp.audio_peaks``) is keyed one window of anchors at a time,
        so only one window's keys exist at once; its windows and their keys are those of the
        same query keyed whole."""
        fps = self.catalog.audio_params.frames_per_second
        window = self.audio_match.window_s * fps
        overlap = self.audio_match.max_gap_s * fps
        if fp.audio is None:
            return self._audio_segments_on_demand(fp.audio_peaks, window, overlap)
        return self._audio_segments_keyed(fp.audio, window, overlap)

    def _audio_segments_keyed(self, landmarks: Landmarks, window: float, overlap: float,
                              peaks: Peaks | None = None) -> list[Segment]:
        """``peaks``: the query's peaks, for the peak check (a query keyed at fingerprinting,
        ``fp.audio``, has none and is matched on votes alone)."""
        whole = (-np.inf, np.inf)
        if one_window(landmarks, window, overlap):
            return self._audio_window(landmarks, peaks, whole)
        own, ahead = window_ids(landmarks, window, overlap)
        if int(ahead.max()) - int(own.min()) <= 1:
            return self._audio_window(landmarks, peaks, whole)
        segments: list[Segment] = []
        for w in range(int(own.min()), int(ahead.max()) + 1):
            picked = np.flatnonzero((own == w) | (ahead == w))
            if picked.size:
                segments.extend(self._audio_window(subset(landmarks, picked), peaks,
                                                   (w * window - overlap, (w + 1) * window)))
        return join_windows(segments, match=self.audio_match,
                            windows=int(ahead.max()) - int(own.min()) + 1)

    def _audio_segments_on_demand(self, peaks: QueryPeaks, window: float,
                                  overlap: float) -> list[Segment]:
        frames = peaks.peaks.frame
        if len(peaks) == 0:
            return []
        # A landmark's query frame is its anchor peak's frame to within half a frame at its
        # speed (frames are rounded in reference time), hence the margin of one frame.
        first = int((frames[0] - 1) // window)
        last = int((frames[-1] + 1 + overlap) // window)
        if last - first <= 3:  # a short query: keyed whole, as above
            return self._audio_segments_keyed(peaks.landmarks(), window, overlap, peaks.peaks)
        segments: list[Segment] = []
        seen_lo, seen_hi = None, None  # the windows any landmark is in, as keyed whole
        for w in range(first, last + 1):
            lo = int(np.searchsorted(frames, w * window - overlap - 1, side="left"))
            hi = int(np.searchsorted(frames, (w + 1) * window + 1, side="right"))
            if hi <= lo:
                continue
            landmarks = peaks.landmarks(lo, hi)
            own, ahead = window_ids(landmarks, window, overlap)
            picked = np.flatnonzero((own == w) | (ahead == w))
            if len(landmarks):
                low, high = int(own.min()), int(ahead.max())
                seen_lo = low if seen_lo is None else min(seen_lo, low)
                seen_hi = high if seen_hi is None else max(seen_hi, high)
            if picked.size:
                segments.extend(self._audio_window(subset(landmarks, picked), peaks.peaks,
                                                   (w * window - overlap, (w + 1) * window)))
        n_windows = seen_hi - seen_lo + 1 if seen_lo is not None else 1
        return join_windows(segments, match=self.audio_match, windows=n_windows)

    def _audio_window(self, landmarks: Landmarks, peaks: Peaks | None = None,
                      frames: tuple[float, float] = (-np.inf, np.inf)) -> list[Segment]:
        """One window's audio segments: a first look with the unwarped keys alone, kept when
        its matches cover the window (``AudioMatchParams.first_look``); then, with
        ``staged_looks``, the resampling warps' keys, then the rest, each look aligning over
        every hit so far (the last is the full look); without, a look with every warp.
        With the query's ``peaks`` (and a catalog that stores the references'), the last
        look's hypotheses that fall short are checked peak by peak (:mod:`engine.audio.verify`)
        over the window's query ``frames``."""
        match = self.audio_match
        hypotheses: list[Hypothesis] | None = (
            [] if peaks is not None and self._reference_peaks is not None else None)
        identity = (landmarks.speeds == 1.0) & (landmarks.pitches == 1.0)
        if not (match.first_look and landmarks.speeds.size > 1 and identity.any()
                and len(landmarks)):
            found = self._audio_look(landmarks, hypotheses=hypotheses)
            return self._verified(found, hypotheses, peaks, frames)
        warps = [identity]  # the looks, as masks over the warps
        if match.staged_looks:
            resample = (landmarks.speeds == landmarks.pitches) & ~identity
            warps += [resample, ~resample & ~identity]
        stages = [mask for mask in warps if mask.any()]
        seconds = query_seconds(landmarks, self.catalog.audio_params.frames_per_second)
        # Each distinct key is read in the first look whose warps make it, and only there.
        unique_keys, inverse, by_key = distinct_keys(landmarks.hashes)
        stage_of_warp = np.full(landmarks.speeds.size, len(stages), np.int64)  # in no look
        for i, mask in enumerate(stages):
            stage_of_warp[mask] = i
        stage_of = stage_of_warp[landmarks.speed_index]
        first_stage = np.full(unique_keys.size, len(stages), np.int64)
        np.minimum.at(first_stage, inverse, stage_of)
        stage_ids = [np.flatnonzero(first_stage == i) for i in range(len(stages))]
        rest = sum(ids.size for ids in stage_ids[1:]) or 1
        shares = [match.first_look_budget_share if i == 0 else
                  (1.0 - match.first_look_budget_share) * ids.size / rest
                  for i, ids in enumerate(stage_ids)]
        plan = getattr(self._postings, "plan", None)
        if plan is not None:  # a cluster's postings can ask later looks ahead, in one trip
            plan([(unique_keys[ids], self._stop_key_postings, self._budget(seconds, share))
                  for ids, share in zip(stage_ids, shares)])
        hits: list[tuple[np.ndarray, ...]] = []  # (keys, ordinals, frames) per look
        votes = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # (references, votes) so far
        picked = np.zeros(len(landmarks), bool)
        for i, ids in enumerate(stage_ids):
            key_index, ordinals, ref_frames = self._lookup(unique_keys[ids], seconds, shares[i])
            hits.append((ids[key_index], ordinals, ref_frames))
            if ordinals.size:  # the looks' keys are disjoint, so their votes add up
                votes = merge_votes(*votes, *reference_votes(key_index, ordinals))
            picked |= stage_of == i
            # the short hypotheses of the full look alone are checked (an earlier look that
            # covers the window needs none, one that falls short hands its window on)
            last = match.staged_looks and i == len(stage_ids) - 1
            found = self._align_looked(landmarks, picked, inverse, by_key, hits, votes,
                                       seconds, hypotheses if last else None)
            if found and covered_s(found) >= match.first_look_cover * seconds:
                return found
        # staged, the last look was the full look; else the full look reads every key anew
        if not match.staged_looks:
            found = self._audio_look(landmarks, hypotheses=hypotheses)
        return self._verified(found, hypotheses, peaks, frames)

    def _verified(self, found: list[Segment], hypotheses: list[Hypothesis] | None,
                  peaks: Peaks | None, frames: tuple[float, float]) -> list[Segment]:
        """``found`` and the hypotheses that pass the peak check, best first (``hypotheses`` is
        None unless the query has peaks and the catalog stores them)."""
        if not hypotheses:
            return found
        params = self.catalog.audio_params
        extra = verified_segments(
            peaks, hypotheses, self._reference_peaks, params=params, match=self.audio_match,
            catalog_hours=self._catalog_frames / params.frames_per_second / 3600.0,
            window=frames, found=found)
        if not extra:
            return found
        return sorted(found + extra, key=lambda s: (-s.score, -s.evidence["aligned_hashes"]))

    def _lookup(self, keys: np.ndarray, seconds: float, budget_share: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bounded postings of unique ``keys`` (:meth:`PostingsIndex.lookup`), tombstoned
        references left out: (key_index, ordinals, frames)."""
        key_index, ordinals, frames = self._postings.lookup(
            keys, max_postings=self._stop_key_postings,
            budget=self._budget(seconds, budget_share))
        if self._deleted.size and ordinals.size:
            alive = ~np.isin(ordinals, self._deleted)
            key_index, ordinals, frames = key_index[alive], ordinals[alive], frames[alive]
        return key_index, ordinals, frames

    def _budget(self, seconds: float, budget_share: float) -> int:
        return int(self.audio_match.lookup_budget_per_s * seconds * budget_share)

    def _align_looked(self, landmarks: Landmarks, picked: np.ndarray, inverse: np.ndarray,
                      by_key: np.ndarray, hits: list, votes: tuple[np.ndarray, np.ndarray],
                      seconds: float, hypotheses: list[Hypothesis] | None = None
                      ) -> list[Segment]:
        """Align the ``picked`` landmarks (bool mask) over the hits of every look so far
        (``hits``: (key, ordinals, frames) per look, keys as indices into the window's
        distinct keys, which ``inverse`` gives every landmark, ``by_key`` its stable argsort;
        ``votes``: (references, votes) of all those hits, references ascending)."""
        key_index = np.concatenate([h[0] for h in hits])
        ordinals = np.concatenate([h[1] for h in hits])
        frames = np.concatenate([h[2] for h in hits])
        refs, votes = votes
        if ordinals.size == 0:  # no hit in any look so far: nothing to align
            return []
        keep = shortlist_mask(ordinals, refs, votes, limit=self._shortlist_size(seconds),
                              min_votes=self.audio_match.least_votes(hypotheses is not None))
        if not picked.all():  # the subset's stable order by key, from the window's
            indices, by_key = picked_order(picked, by_key)
            landmarks, inverse = subset(landmarks, indices), inverse[indices]
        return self._align_hits(landmarks, inverse, key_index, ordinals, frames, seconds,
                                by_key, keep, hypotheses)

    def _audio_look(self, landmarks: Landmarks, budget_share: float = 1.0,
                    hypotheses: list[Hypothesis] | None = None) -> list[Segment]:
        """Bounded audio matching of one window: each distinct key is looked up once (across
        warps) and returns at most the stop-key cap of postings; references are shortlisted by
        raw votes (distinct query keys with any hit), and only the shortlist's hits are aligned."""
        unique_keys, inverse, by_key = distinct_keys(landmarks.hashes)
        # Work in proportion to the window's audio: the lookup budget and the shortlist.
        seconds = query_seconds(landmarks, self.catalog.audio_params.frames_per_second)
        key_index, ordinals, frames = self._lookup(unique_keys, seconds, budget_share)
        return self._align_hits(landmarks, inverse, key_index, ordinals, frames, seconds,
                                by_key, hypotheses=hypotheses)

    def _align_hits(self, landmarks: Landmarks, inverse: np.ndarray, key_index: np.ndarray,
                    ordinals: np.ndarray, frames: np.ndarray, seconds: float,
                    by_key: np.ndarray | None = None, keep: np.ndarray | None = None,
                    hypotheses: list[Hypothesis] | None = None) -> list[Segment]:
        if keep is None:
            keep = shortlist(key_index, ordinals, limit=self._shortlist_size(seconds),
                             min_votes=self.audio_match.least_votes(hypotheses is not None))
        query_landmark, ordinals, ref_frames = hits_for(
            landmarks, key_index[keep], ordinals[keep], frames[keep], inverse.reshape(-1),
            by_key)
        params = self.catalog.audio_params
        # Reference lengths (frames) of the references with hits, for the chance model.
        lengths = self._reference_frames(ordinals)
        return align_audio(
            landmarks, query_landmark, ordinals, ref_frames, params=params,
            match=self.audio_match, reference_frames=lengths,
            catalog_frames=max(self._catalog_frames, 1), hypotheses=hypotheses,
        )

    def _shortlist_size(self, seconds: float) -> int:
        return max(self.audio_match.shortlist, int(round(self.audio_match.shortlist_per_s
                                                         * seconds)))

    def _reference_frames(self, ordinals: np.ndarray) -> dict[int, int]:
        if ordinals.size == 0:
            return {}
        # Only references with enough raw hits can pass: look up just those.
        unique, counts = np.unique(ordinals, return_counts=True)
        busy = unique[counts >= self.audio_match.min_votes].astype(np.int64)
        # every reference's length, which the catalog keeps a generation (one SQL query a
        # look for the busy ones took 1.2 ms at 10,000 h)
        table, lengths = self.catalog.reference_frames()
        if table.size == 0:
            return {}
        place = np.minimum(np.searchsorted(table, busy), table.size - 1)
        known = table[place] == busy
        return dict(zip(busy[known].tolist(), lengths[place[known]].tolist()))

    def _video_segments(self, fp: Fingerprint) -> list[Segment]:
        from nanhu.engine.video.match import video_segments

        return video_segments(self.catalog, fp, deleted=self._deleted, params=self.video_match)
