"""The media of this run: three Frets on Fire songs (song.ogg + guitar.ogg mixed, Debian's
fretsonfire-songs-muldjord as the bench corpus caches it) encoded as 44.1 kHz stereo mp3
(LAME 192k), aac (160k) and 48 kHz opus (128k) into /tmp/s11/speed; vorbis is Pushover's own
aztec, castle and dungeon themes. Run with the project's Python."""
import av, numpy as np, glob, os
base = os.path.expanduser("~/.cache/nanhu/debs/fretsonfire-songs-muldjord/usr/share/games/fretsonfire/data/songs/muldjord")
def decode_stereo(path, rate):
    c = av.open(path); s = c.streams.audio[0]
    r = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    out = []
    for f in c.decode(s):
        for g in r.resample(f): out.append(g.to_ndarray())
    for g in r.resample(None): out.append(g.to_ndarray())
    return np.concatenate(out, 1)
def encode(x, rate, path, codec, br):
    c = av.open(path, "w"); s = c.add_stream(codec, rate=rate); s.layout = "stereo"; s.bit_rate = br
    fs = s.codec_context.frame_size or 1024
    for i in range(0, x.shape[1], fs):
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i+fs], np.float32), format="fltp", layout="stereo"); f.sample_rate = rate
        for p in s.encode(f): c.mux(p)
    for p in s.encode(None): c.mux(p)
    c.close()
for d in ("armygeddon", "chaos_god", "internal_degeneration"):
    x = decode_stereo(f"{base}/{d}/song.ogg", 44100)
    g = decode_stereo(f"{base}/{d}/guitar.ogg", 44100)
    n = min(x.shape[1], g.shape[1]); x = 0.6 * (x[:, :n] + g[:, :n])
    encode(x, 44100, f"/tmp/s11/speed/{d}.mp3", "libmp3lame", 192000)
    encode(x, 44100, f"/tmp/s11/speed/{d}.m4a", "aac", 160000)
    y = decode_stereo(f"{base}/{d}/song.ogg", 48000); gy = decode_stereo(f"{base}/{d}/guitar.ogg", 48000)
    n = min(y.shape[1], gy.shape[1]); y = 0.6 * (y[:, :n] + gy[:, :n])
    encode(y, 48000, f"/tmp/s11/speed/{d}.opus", "libopus", 128000)
    print(d, x.shape[1] / 44100)
