"""Is a change to decoding or peak picking bit-identical? Dump what fingerprints are made of with
one tree, again with the other, and compare byte for byte.

    python -m nanhu.benchmarks.fingerprint_identity dump OUT_DIR FILES...
    python -m nanhu.benchmarks.fingerprint_identity compare DIR_A DIR_B

``dump`` writes one ``.npz`` per file (named by its position and file name, so give both trees
the same file list): the SHA-256 of the decoded samples at the fingerprint's rate and the chunk
sizes, the stream peaks (frame, log-frequency, prominence), the reference hashes and frames, a
query's peaks (``keys_on_demand``) and both durations. ``compare`` names every file and array
that differs in dtype, shape or bytes and exits 1 if any does. Run ``dump`` once with each tree's
Python (e.g. main's checkout and a branch's). Not a timed test.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nanhu.engine import media
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import stream_peaks
from nanhu.engine.fingerprint import fingerprint_media


def dump(out_dir: Path, files: Sequence[str | Path]) -> None:
    """One ``.npz`` per file in ``out_dir`` (created), named ``NN-<file name>.npz``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = AudioParams()
    for i, path in enumerate(files):
        chunks = list(media.decode_audio(path, sample_rate=params.sample_rate))
        samples = np.concatenate(chunks)
        peaks, _ = stream_peaks(iter(chunks), params=params)
        ref = fingerprint_media(path, video=False)
        query = fingerprint_media(path, video=False, query=True, keys_on_demand=True)
        qpeaks = query.audio_peaks.peaks
        np.savez(
            out_dir / f"{i:02d}-{Path(path).name}.npz",
            samples_sha256=np.frombuffer(hashlib.sha256(samples.tobytes()).digest(), np.uint8),
            chunk_sizes=np.array([c.size for c in chunks]),
            peak_frame=peaks.frame, peak_log_freq=peaks.log_freq, peak_prominence=peaks.prominence,
            hashes=ref.audio.hashes, hash_frames=ref.audio.frames,
            query_frame=qpeaks.frame, query_log_freq=qpeaks.log_freq,
            query_prominence=qpeaks.prominence,
            durations=np.array([ref.duration_s, query.duration_s]),
        )
        sys.stdout.write(f"{i:02d} {path}: {samples.size} samples, {len(peaks)} peaks, "
                         f"{ref.audio.hashes.size} hashes\n")


def compare(a: Path, b: Path) -> int:
    """Number of files whose dumps differ (printed per file); the file sets must match."""
    names = sorted(p.name for p in a.glob("*.npz"))
    if names != sorted(p.name for p in b.glob("*.npz")):
        raise SystemExit(f"{a} and {b} hold different files")
    differing = 0
    for name in names:
        with np.load(a / name) as x, np.load(b / name) as y:
            diff = [k for k in x.files if k not in y.files or x[k].dtype != y[k].dtype
                    or x[k].shape != y[k].shape or x[k].tobytes() != y[k].tobytes()]
        differing += bool(diff)
        sys.stdout.write(f"{'DIFF' if diff else 'same'} {name} {' '.join(diff)}\n")
    sys.stdout.write(f"{len(names) - differing}/{len(names)} bit-identical\n")
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanhu.benchmarks.fingerprint_identity",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="dump the fingerprint's parts of FILES into OUT_DIR")
    d.add_argument("out_dir", type=Path)
    d.add_argument("files", nargs="+")
    c = sub.add_parser("compare", help="compare two dump directories byte for byte")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.out_dir, args.files)
        return 0
    return 1 if compare(args.a, args.b) else 0


if __name__ == "__main__":
    sys.exit(main())
