"""The media of this run: three Frets on Fire songs (song.ogg and guitar.ogg mixed, from
Debian's fretsonfire-songs-muldjord as the bench corpus caches it) encoded as 44.1 kHz stereo
mp3 (LAME 192k) and aac (160k) and as 48 kHz opus (128k) into OUT; vorbis is Pushover's own
aztec, castle and dungeon themes, as packaged. Run with the project's Python:

    python make_media.py /tmp/s11/speed
"""

import sys
from pathlib import Path

import av
import numpy as np

SONGS = (Path.home() / ".cache/nanhu/debs/fretsonfire-songs-muldjord/usr/share/games"
         / "fretsonfire/data/songs/muldjord")


def decode_stereo(path: Path, rate: int) -> np.ndarray:
    """float32 [2, n] at ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        frames = [g.to_ndarray() for f in container.decode(container.streams.audio[0])
                  for g in resampler.resample(f)]
        frames += [g.to_ndarray() for g in resampler.resample(None)]
    return np.concatenate(frames, 1)


def mixed(song: str, rate: int) -> np.ndarray:
    a = decode_stereo(SONGS / song / "song.ogg", rate)
    b = decode_stereo(SONGS / song / "guitar.ogg", rate)
    n = min(a.shape[1], b.shape[1])
    return 0.6 * (a[:, :n] + b[:, :n])


def encode(x: np.ndarray, rate: int, path: Path, codec: str, bit_rate: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        stream.bit_rate = bit_rate
        size = stream.codec_context.frame_size or 1024
        for i in range(0, x.shape[1], size):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + size], np.float32),
                                               format="fltp", layout="stereo")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for song in ("armygeddon", "chaos_god", "internal_degeneration"):
        x = mixed(song, 44100)
        encode(x, 44100, out / f"{song}.mp3", "libmp3lame", 192_000)
        encode(x, 44100, out / f"{song}.m4a", "aac", 160_000)
        encode(mixed(song, 48000), 48000, out / f"{song}.opus", "libopus", 128_000)
        print(song, round(x.shape[1] / 44100, 1), "s")
