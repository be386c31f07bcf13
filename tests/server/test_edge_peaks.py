"""Audio peaks over gRPC (issue 10): a work registered as an edge fingerprint carries its own
peaks (the proto's ``reference_peaks``), so the catalog stores them; a query fingerprinted at
the edge with ``keys_on_demand`` travels as its peaks (``audio_peaks``, format 2), so the
server keys it and its peak check runs exactly as on a file screened in process. A keyed
edge query is still matched, on votes alone."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.server import convert


@pytest.fixture
def edge(small_server, reference_fps):
    env = small_server()
    with env.client() as client:
        for ref_id, fp in reference_fps.items():
            assert fp.reference_peaks is not None and len(fp.reference_peaks)
            client.register_fingerprint(fp, ref_id)
    return env


def public(matches: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "claim_id"} for m in matches]


def test_edge_works_keep_their_peaks_and_edge_queries_get_the_peak_check(edge, reference_fps,
                                                                         songs, kit, tmp_path):
    with Catalog(edge.catalog) as catalog:
        assert catalog.manifest.get("audio_peaks")
        store = catalog.reference_peaks()
        for ref_id, fp in reference_fps.items():
            frames, _ = store.window(catalog.get(ref_id).ordinal, 0, 1e9)
            assert np.array_equal(frames, fp.reference_peaks.frame)  # every peak, as sent
    checked = 0
    with edge.client() as client, Catalog(edge.catalog) as catalog:
        matcher = Matcher(catalog)
        rng = np.random.default_rng(5)
        for ref_id, samples in songs.items():
            # 5 s found by votes; 2 s under noise at -6 dB: what votes leave to the check
            for seconds, noise in ((5.0, 0.0), (2.0, 2.0)):
                clip = kit.excerpt(samples, 10.0, 10.0 + seconds)
                clip = clip + noise * float(np.std(clip)) * rng.standard_normal(clip.size)
                lazy = fingerprint_media(kit.write_clip(tmp_path / f"{ref_id}-{seconds}.mp3", clip),
                                         query=True, video=False, keys_on_demand=True)
                by_grpc = client.screen_fingerprint(lazy)["matches"]
                assert public(by_grpc) == public([m.to_dict() for m in matcher.match(lazy)])
                assert [m["reference_id"] for m in by_grpc] in ([ref_id], []), ref_id
                if seconds == 5.0:
                    assert by_grpc, ref_id
                checked += any(m["evidence"].get("verified") == "peaks" for m in by_grpc)
                # keyed, the same query reaches the server as keys and is matched on votes
                keyed = client.screen_fingerprint(lazy.keyed())["matches"]
                assert all("verified" not in m["evidence"] for m in keyed)
    assert checked >= 1  # some of these the check found (short of the votes)


def test_bad_edge_peaks_are_invalid_argument_and_the_server_serves_on(edge, reference_fps,
                                                                      songs, kit, tmp_path):
    clip = kit.excerpt(songs["song-1"], 10.0, 15.0)
    lazy = fingerprint_media(kit.write_clip(tmp_path / "q.mp3", clip), query=True, video=False,
                             keys_on_demand=True)
    msg = convert.fingerprint_to_proto(lazy)
    msg.audio_peaks.frames[3] = 10**8
    with edge.client() as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.screen_fingerprint(msg)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "audio_peaks.frames" in caught.value.details()
        bad = convert.fingerprint_to_proto(reference_fps["song-0"])
        bad.reference_peaks.log_freq[0] = float("nan")
        with pytest.raises(grpc.RpcError) as caught:
            client.register_fingerprint(bad, "poisoned")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "audio.peak_log_freq" in caught.value.details()
        assert client.screen_fingerprint(lazy)["matches"][0]["reference_id"] == "song-1"
