"""The vPDQ baseline's matching rule, on made-up hashes (no media, no pdqhash needed)."""

import numpy as np

from nanhu.benchmarks.peers import pdq as pb


def _flip_bits(hashes: np.ndarray, row: int, n_bits: int, rng: np.random.Generator) -> None:
    for bit in rng.choice(256, n_bits, replace=False):
        hashes[row, bit // 8] ^= np.uint8(1 << (7 - bit % 8))


def test_vpdq_rule_needs_80_percent_of_query_frames_within_31_bits():
    rng = np.random.default_rng(0)

    def frames(hashes: np.ndarray, quality: int = 100) -> pb.PdqFrames:
        return pb.PdqFrames(hashes, np.full(len(hashes), quality, np.int32),
                            np.arange(len(hashes), dtype=np.float32))

    reference = rng.integers(0, 256, (50, 32), np.uint8)
    index = pb.VpdqIndex()
    index.add("ref", frames(reference))
    index.add("other", frames(rng.integers(0, 256, (50, 32), np.uint8)))
    query = reference[:10].copy()
    for row in range(10):  # 8 frames 20 bits away (match), 2 frames 60 bits away (no match)
        _flip_bits(query, row, 20 if row < 8 else 60, rng)
    found = index.match(frames(query))
    assert [(m.reference_id, m.query_match_percent) for m in found] == [("ref", 80.0)]
    _flip_bits(query, 0, 60, rng)  # now 7 of 10
    assert index.match(frames(query)) == []
    assert index.match(frames(reference[:10], quality=49)) == []  # below PDQ quality 50
