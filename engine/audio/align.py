"""Audio alignment: offset-histogram voting per reference (Shazam), into scored segments.

Every query landmark that shares a hash with a reference posting casts a vote for
``(reference, candidate speed, reference_frame - query_frame)``. A copy of the reference piles
votes into one offset bin (give or take a frame of jitter); chance collisions spread thinly.

Score. For a bin with ``v`` votes, the chance that coincidences alone reach ``v`` is modelled as
a Poisson tail with the bin's background rate ``mu`` (the reference's chance hits at that speed
spread over every offset the query could take), multiplied by the number of bins the catalog
offers (reference frames x candidate speeds): ``E = n_bins * P(Poisson(mu) >= v)``, the expected
number of bins that chance alone fills this well for one query against this catalog. It is
reported as ``log10_chance`` and mapped to the score on the scale every modality shares
(:mod:`engine.segments`: score 0.5 is E = 1e-3). Votes are distinct query anchors (an anchor's
several keys are one coincidence). The default thresholds were set from the null distribution
of never-registered queries at 18 h to 10,000 h (``nanhu bench scale``; ``docs/audio.md``).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from nanhu.engine.audio.keys import F_BITS, Landmarks
from nanhu.engine.audio.match_params import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.verify import Hypothesis
from nanhu.engine.segments import Segment, log10_expected, score_from_log10_expected


def align_audio(
    landmarks: Landmarks,
    query_landmark: np.ndarray,
    ordinals: np.ndarray,
    ref_frames: np.ndarray,
    *,
    params: AudioParams,
    match: AudioMatchParams,
    reference_frames: dict[int, int],
    catalog_frames: int,
    hypotheses: list[Hypothesis] | None = None,
) -> list[Segment]:
    """Vote on offsets and cut the winning bins into segments.

    query_landmark, ordinals, ref_frames : hits from :func:`engine.audio.shortlist.hits_for`.
    reference_frames : reference length in frames per candidate ordinal (for the background).
    catalog_frames : total reference frames in the catalog (number of offsets on offer).
    hypotheses : when a list, the strongest bins that do not pass (down to
        ``match.verify_min_votes`` aligned keys) are appended to it, one a reference, for the
        peak check of :mod:`engine.audio.verify`.
    """
    if ordinals.size == 0:
        return []
    low = match.least_votes(hypotheses is not None)
    fps = params.frames_per_second
    n_speeds = landmarks.speeds.size
    speed_index = landmarks.speed_index[query_landmark].astype(np.int64)
    offsets = ref_frames - landmarks.frames[query_landmark].astype(np.int64)
    # One sort of the (reference, warp, offset) bin of every hit; every count below is a run
    # length in that order (pairs are contiguous because the pair is the key's high part).
    ref_speed = ordinals.astype(np.int64) * n_speeds + speed_index
    offset_base = int(offsets.min()) - match.offset_tolerance
    span = int(offsets.max()) - offset_base + match.offset_tolerance + 1
    bin_key = ref_speed * span + (offsets - offset_base)
    by_bin = np.argsort(bin_key)
    sorted_bins = bin_key[by_bin]
    pair_of_sorted = sorted_bins // span
    pair_starts = np.flatnonzero(np.r_[True, pair_of_sorted[1:] != pair_of_sorted[:-1]])
    pair_keys = pair_of_sorted[pair_starts]
    pair_counts = np.diff(np.r_[pair_starts, sorted_bins.size])
    # Stage 1: only (reference, warp) pairs with enough raw hits can pass.
    if not np.any(pair_counts >= low):
        return []
    bin_starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
    keys = sorted_bins[bin_starts]
    counts = np.diff(np.r_[bin_starts, sorted_bins.size])
    # Stage 2: offset histogram per (reference, warp), smoothed over +-tolerance frames.
    smoothed = smoothed_counts(keys, counts, match.offset_tolerance)
    candidates = np.flatnonzero(smoothed >= low)
    if candidates.size == 0:
        return []
    # One copy lights up neighbouring offsets at several neighbouring warps: examine only the
    # strongest few bins of each reference (a long upload with several copies of one work
    # needs several), strongest first.
    cand_ordinal = (keys[candidates] // span) // n_speeds
    order = np.lexsort((-smoothed[candidates], cand_ordinal))
    cand_sorted = cand_ordinal[order]
    rank = np.arange(order.size) - np.searchsorted(cand_sorted, cand_sorted, side="left")
    candidates = candidates[order[rank < match.bins_per_reference]]
    candidates = candidates[np.argsort(-smoothed[candidates], kind="stable")][
        : match.max_candidates * 4
    ]
    query_span = landmarks.frames.max() - landmarks.frames.min() + 1
    n_bins = max(1.0, float(catalog_frames) * n_speeds)
    # Most candidates of a never-registered query cannot pass whatever their hits hold: skip
    # those before the per-candidate work. Exact, not a heuristic: a candidate's votes are at
    # most its smoothed count, the chance falls as votes rise, and the order of the loop and
    # what it claims (``taken``) depend only on the candidates that pass.
    passable = _may_pass(
        smoothed[candidates], keys[candidates] // span, pair_keys, pair_counts, n_speeds,
        reference_frames, query_span, n_bins, catalog_frames / fps / 3600.0, match)
    tol = match.offset_tolerance

    def hypothesis(c: int, idx: np.ndarray) -> Hypothesis:
        ordinal, s_index = divmod(int(keys[c]) // span, n_speeds)
        speed = float(landmarks.speeds[s_index])
        q_frames = landmarks.frames[query_landmark[idx]] / speed
        return Hypothesis(ordinal=ordinal, speed=speed, pitch=float(landmarks.pitches[s_index]),
                          offset=float(np.median(offsets[idx])), query_lo=float(q_frames.min()),
                          query_hi=float(q_frames.max()),
                          votes=_distinct_anchors(landmarks, query_landmark[idx]))

    if hypotheses is not None:  # the strongest of each reference that cannot pass on votes
        short = candidates[~passable]
        _, first = np.unique((keys[short] // span) // n_speeds, return_index=True)
        for c in short[np.sort(first)][: 2 * match.verify_hypotheses]:
            lo, hi = np.searchsorted(sorted_bins, [keys[c] - tol, keys[c] + tol + 1])
            hypotheses.append(hypothesis(c, by_bin[lo:hi]))
    candidates = candidates[passable]
    if candidates.size == 0:
        return []
    segments: list[Segment] = []
    taken = np.zeros(bin_key.size, bool)
    # Query time of every hit in query frames, whatever warp it was hashed at.
    hit_query_frame = landmarks.frames[query_landmark] / landmarks.speeds[speed_index]
    hit_speed = landmarks.speeds[speed_index]
    hit_pitch = landmarks.pitches[speed_index]
    for c in candidates:
        if len(segments) >= match.max_candidates:
            break
        lo, hi = np.searchsorted(sorted_bins, [keys[c] - tol, keys[c] + tol + 1])
        idx = by_bin[lo:hi]
        idx = idx[~taken[idx]]
        if idx.size < match.min_votes:
            continue
        pair = int(keys[c]) // span
        ordinal, s_index = divmod(pair, n_speeds)
        speed = float(landmarks.speeds[s_index])
        pitch = float(landmarks.pitches[s_index])
        for part in _split_by_gaps(idx, landmarks.frames[query_landmark[idx]] / speed,
                                   match.max_gap_s * fps):
            # votes are distinct query anchors, as min_votes says
            votes = _distinct_anchors(landmarks, query_landmark[part])
            if votes < match.min_votes:
                if hypotheses is not None and votes >= low:
                    hypotheses.append(hypothesis(c, part))
                continue
            pair_hits = int(pair_counts[np.searchsorted(pair_keys, pair)])
            log10_poisson, log10_p = _log10_chance(
                votes, pair_hits, reference_frames.get(ordinal, 0), query_span, n_bins,
                catalog_frames / fps / 3600.0, match)
            score = score_from_log10_expected(log10_p)
            if score < match.min_score:
                if hypotheses is not None:
                    hypotheses.append(hypothesis(c, part))
                continue
            true_offset = float(np.median(offsets[part]))
            q_frames = landmarks.frames[query_landmark[part]].astype(np.float64) / speed
            # The copy's ends: every hit of this reference, at any warp, that agrees with this
            # alignment (a neighbouring warp sees the copy's edges too), near the votes.
            near = ((ordinals == ordinal)
                    & (np.abs(hit_speed - speed) <= 0.035) & (np.abs(hit_pitch - pitch) <= 0.035)
                    & (hit_query_frame >= q_frames.min() - 2.0 * fps)
                    & (hit_query_frame <= q_frames.max() + 2.0 * fps))
            agree = near & (np.abs(ref_frames - (hit_query_frame * speed + true_offset))
                            <= 2 * tol + 1)
            q_frames = np.concatenate([q_frames, hit_query_frame[agree]])
            q_start, q_end = q_frames.min() / fps, q_frames.max() / fps
            segments.append(Segment(
                reference=ordinal, modality="audio",
                query_start_s=q_start, query_end_s=q_end + params.n_fft / params.sample_rate,
                reference_start_s=(q_frames.min() * speed + true_offset) / fps,
                reference_end_s=(q_frames.max() * speed + true_offset) / fps
                + params.n_fft / params.sample_rate * speed,
                speed=speed, score=score,
                evidence={"aligned_hashes": int(votes), "query_hashes": int(
                    np.count_nonzero(landmarks.speed_index == s_index)),
                    "reference_hits": pair_hits,
                    "log10_chance": round(float(max(log10_p, -300.0)), 2),
                    "log10_chance_poisson": round(float(max(log10_poisson, -300.0)), 2),
                    "pitch": round(pitch, 4),
                    "offset_s": round(true_offset / fps, 3)},
            ))
            # Every other hit of this reference in this stretch of the query, at any warp or
            # offset, is this copy seen slightly askew: claim them so that no candidate bin
            # re-examines the same copy.
            taken |= ((ordinals == ordinal) & (hit_query_frame >= q_frames.min())
                      & (hit_query_frame <= q_frames.max()))
    return _merge_continuations(_suppress_overlaps(segments), max_gap_s=match.max_gap_s)


def _distinct_anchors(landmarks: Landmarks, hit: np.ndarray) -> int:
    """Distinct query anchors among landmarks ``hit``: the ``fanout`` landmarks of one anchor
    peak are one coincidence, not several (counted apart, a single matching pair of notes
    reached min_votes). An anchor is its frame and its log-frequency, the key's F field
    (layout in engine.audio.keys)."""
    return int(np.unique((landmarks.frames[hit].astype(np.int64) << F_BITS)
                         | (landmarks.hashes[hit] & ((1 << F_BITS) - 1)).astype(np.int64)).size)


def smoothed_counts(keys: np.ndarray, counts: np.ndarray, tolerance: int) -> np.ndarray:
    """int64[n]: each bin's count plus those of the bins within ``tolerance`` of it.

    keys : int64[n], distinct bin keys, ascending; counts : int64[n], their hits.
    Distinct sorted integers put every bin within ``tolerance`` of bin ``i`` among its
    ``tolerance`` neighbours on each side, so one comparison a neighbour finds them (no search).
    """
    smoothed = counts.astype(np.int64, copy=True)
    for j in range(1, tolerance + 1):
        near = keys[j:] - keys[:-j] <= tolerance  # bins i and i + j are within reach
        smoothed[:-j] += np.where(near, counts[j:], 0)
        smoothed[j:] += np.where(near, counts[:-j], 0)
    return smoothed


def _may_pass(votes_at_most: np.ndarray, pairs: np.ndarray, pair_keys: np.ndarray,
              pair_counts: np.ndarray, n_speeds: int, reference_frames: dict[int, int],
              query_span: int, n_bins: float, catalog_hours: float,
              match: AudioMatchParams) -> np.ndarray:
    """bool[c]: whether a candidate bin with at most ``votes_at_most`` votes could reach
    ``match.min_score``; the chance model of :func:`align_audio`, at every candidate at once.

    pairs : int64[c], each candidate's ``ordinal * n_speeds + warp``; ``pair_keys`` /
        ``pair_counts`` the sorted pairs and their raw hits (the background's numerator).
    """
    if votes_at_most.size == 0:
        return np.zeros(0, bool)
    pair_hits = pair_counts[np.searchsorted(pair_keys, pairs)].astype(np.float64)
    refs, which = np.unique(pairs // n_speeds, return_inverse=True)
    n_ref = np.array([reference_frames.get(int(o), 0) for o in refs], np.float64)[which]
    _, log10_p = _log10_chance(votes_at_most.astype(np.float64), pair_hits, n_ref, query_span,
                               n_bins, catalog_hours, match)
    # score >= min_score is E <= the min score's E; a margin far above rounding and far below
    # any step that matters keeps every bin the loop could pass (the loop decides)
    return (votes_at_most >= match.min_votes) & (
        log10_p <= log10_expected(match.min_score) + 1e-9)


def _log10_chance(votes, pair_hits, n_ref, query_span, n_bins: float, catalog_hours: float,
                  match: AudioMatchParams):
    """(log10 of the Poisson figure, log10 E calibrated) of a bin with ``votes`` votes whose
    (reference, warp) has ``pair_hits`` raw hits over ``n_ref`` reference frames: the chance
    model of the module docstring, for one bin (floats) or many (arrays)."""
    mu = (2 * match.offset_tolerance + 1) * pair_hits / np.maximum(1.0, n_ref + query_span)
    # P(Poisson(mu) >= votes) = pdtrc(votes - 1, mu); a ufunc, not scipy.stats' per-call
    # machinery (the loop runs this once per candidate segment)
    chance = special.pdtrc(votes - 1, mu)
    log10_poisson = np.log10(np.maximum(chance, 1e-300)) + np.log10(n_bins)
    return log10_poisson, match.calibrated(log10_poisson, catalog_hours)


def join_windows(segments: list[Segment], *, match: AudioMatchParams,
                 windows: int) -> list[Segment]:
    """Segments of consecutive query windows as one list: the overlap's duplicates dropped,
    continuations joined, each one's chance multiplied by the ``windows`` looked at."""
    extra = float(np.log10(max(windows, 1)))
    for seg in segments:
        log10_e = seg.evidence["log10_chance"] + extra
        seg.evidence = {**seg.evidence, "log10_chance": round(log10_e, 2)}
        seg.score = score_from_log10_expected(log10_e)
    kept = [s for s in segments if s.score >= match.min_score]
    # join first: a copy's pieces in two windows overlap by the windows' overlap, which the
    # overlap suppression would otherwise take for two views of one stretch
    return _suppress_overlaps(_merge_continuations(kept, max_gap_s=match.max_gap_s))


def _split_by_gaps(idx: np.ndarray, query_frames: np.ndarray, max_gap_frames: float):
    """Split hit indices into runs whose query times have no gap above ``max_gap_frames``."""
    order = np.argsort(query_frames, kind="stable")
    gaps = np.flatnonzero(np.diff(query_frames[order]) > max_gap_frames) + 1
    return [idx[part] for part in np.split(order, gaps)]


def _suppress_overlaps(segments: list[Segment]) -> list[Segment]:
    """Keep the best of segments of one reference that cover the same query time.

    Neighbouring candidate speeds and offset bins of one copy each form a segment; the one with
    the most aligned landmarks wins.
    """
    segments.sort(key=lambda s: (-s.evidence["aligned_hashes"], -s.score))
    kept: list[Segment] = []
    for seg in segments:
        clash = any(
            k.reference == seg.reference
            and seg.query_overlap_s(k) > 0.5 * min(seg.query_duration_s, k.query_duration_s)
            for k in kept
        )
        if not clash:
            kept.append(seg)
    return kept


def _merge_continuations(segments: list[Segment], *, max_gap_s: float) -> list[Segment]:
    """Join segments of one reference that continue one another in time.

    When the true speed falls between two candidate speeds, the offset drifts slowly along the
    copy and the votes land in consecutive offset bins, cutting one copy into pieces. Pieces
    whose query-to-reference mappings agree within 0.5 s and whose gap is short are one copy.
    """
    segments = sorted(segments, key=lambda s: (s.reference, s.query_start_s))
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if (
            prev is not None and prev.reference == seg.reference
            and seg.query_start_s - prev.query_end_s < max_gap_s
            and abs((seg.reference_start_s - prev.reference_start_s)
                    - prev.speed * (seg.query_start_s - prev.query_start_s)) < 0.5
        ):
            votes = prev.evidence["aligned_hashes"] + seg.evidence["aligned_hashes"]
            keep_speed = prev if prev.evidence["aligned_hashes"] >= seg.evidence["aligned_hashes"] else seg
            prev.query_end_s = max(prev.query_end_s, seg.query_end_s)
            prev.reference_end_s = max(prev.reference_end_s, seg.reference_end_s)
            prev.score = max(prev.score, seg.score)
            prev.speed = keep_speed.speed
            prev.evidence = {**prev.evidence, "aligned_hashes": votes,
                             "log10_chance": min(prev.evidence["log10_chance"],
                                                 seg.evidence["log10_chance"])}
            continue
        out.append(seg)
    out.sort(key=lambda s: (-s.score, -s.evidence["aligned_hashes"]))
    return out
