"""Which references' hits get aligned: raw votes (distinct query keys with any hit) per
reference, the best-voted few, and every query landmark paired with every kept posting of its
key (:func:`hits_for`), which :func:`engine.audio.align.align_audio` then votes on."""

from __future__ import annotations

import numpy as np

from nanhu.engine.audio.kernels import member_of
from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.store.kernels import sorted_words


def shortlist(key_index: np.ndarray, ordinals: np.ndarray, *, limit: int,
              min_votes: int) -> np.ndarray:
    """Postings of the ``limit`` references with the most distinct query keys among their hits.

    key_index, ordinals : int64[k], uint32[k], postings found for the query's unique keys.
    Returns a bool mask over the postings. A reference with fewer than ``min_votes`` distinct
    keys cannot make a segment and is dropped before any hit is expanded.
    """
    refs, votes = reference_votes(key_index, ordinals)
    return shortlist_mask(ordinals, refs, votes, limit=limit, min_votes=min_votes)


def reference_votes(key_index: np.ndarray, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(references int64[r], votes int64[r]): the references with hits, in ordinal order, and
    the number of distinct query keys among each one's hits (postings as in :func:`shortlist`).
    Votes of postings of disjoint key sets add up."""
    if ordinals.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # distinct (reference, key) pairs by one sort of (ordinal, key) words (radix-sorted when
    # long: a look's ~130,000 postings at 1,000 h took 2.4 ms in numpy's sort), then votes as
    # run lengths of the references
    shift = np.uint64(max(int(key_index.max()).bit_length(), 1))
    words = (ordinals.astype(np.uint64) << shift) | key_index.astype(np.uint64)
    pair = sorted_words(words, int(ordinals.max()).bit_length() + int(shift))
    ref = (pair[np.concatenate([[True], pair[1:] != pair[:-1]])] >> shift).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ref[1:] != ref[:-1]]))
    return ref[starts], np.diff(np.append(starts, ref.size))


def shortlist_mask(ordinals: np.ndarray, refs: np.ndarray, votes: np.ndarray, *, limit: int,
                   min_votes: int) -> np.ndarray:
    """The postings (bool over ``ordinals``) of the ``limit`` references of ``refs`` (in
    ordinal order) with the most ``votes``, at least ``min_votes``; ties to the lower ordinal."""
    ok = votes >= min_votes
    refs, votes = refs[ok], votes[ok]
    best = _most_voted(refs, votes, limit)
    if best.size == 0:
        return np.zeros(ordinals.size, bool)
    # one compiled test a posting: a bit table over the chosen ordinals' range, or a probed
    # hash table when they are far apart (engine.audio.kernels.member_of)
    return member_of(np.asarray(ordinals, np.uint32), best.astype(np.int64))


def _most_voted(refs: np.ndarray, votes: np.ndarray, limit: int) -> np.ndarray:
    """The ``limit`` references (of ``refs``, ascending) with the most votes, ties to the lower
    ordinal, sorted: ``sort(refs[argsort(-votes, kind="stable")[:limit]])`` by a partition (a
    stable sort of the ~100,000 references a query touches at 10,000 h took 4.5 ms)."""
    if refs.size <= limit:
        return refs
    kth = refs.size - limit
    threshold = np.partition(votes, kth)[kth]  # the limit-th most votes
    above = np.flatnonzero(votes > threshold)
    tied = np.flatnonzero(votes == threshold)[: limit - above.size]
    return np.sort(refs[np.concatenate([above, tied])])


def hits_for(
    landmarks: Landmarks, key_index: np.ndarray, ordinals: np.ndarray, ref_frames: np.ndarray,
    unique_keys_inverse: np.ndarray, by_key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair every query landmark with every posting of its hash.

    key_index, ordinals, ref_frames : postings found for the unique query keys.
    unique_keys_inverse : int64[n_landmarks], each landmark's index into the unique keys.
    by_key : int64[n_landmarks], ``argsort(unique_keys_inverse, kind="stable")`` where the
        caller has it already (a look of a staged match derives it from the window's).
    Returns (query_landmark int64[h], ordinal uint32[h], ref_frame int64[h]).
    """
    n_keys = int(unique_keys_inverse.max()) + 1 if unique_keys_inverse.size else 0
    if by_key is None:
        by_key = np.argsort(unique_keys_inverse, kind="stable")
    per_key = np.bincount(unique_keys_inverse, minlength=n_keys)
    first_of_key = np.concatenate([[0], np.cumsum(per_key)[:-1]])
    repeats = per_key[key_index]
    posting = np.repeat(np.arange(key_index.size), repeats)
    ends = np.cumsum(repeats)
    within = np.arange(int(repeats.sum())) - np.repeat(ends - repeats, repeats)
    query_landmark = by_key[np.repeat(first_of_key[key_index], repeats) + within]
    return query_landmark, ordinals[posting], ref_frames[posting].astype(np.int64)
