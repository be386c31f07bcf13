"""Attacks pirates use on audio, as pure functions over sample arrays.

Every function takes ``samples : ndarray [shape=(n,)], float32`` at ``sample_rate`` Hz and returns
the attacked signal (float32, possibly another length). Randomness comes from the ``rng`` passed
in, so a benchmark run repeats exactly.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from scipy import signal

from nanhu.benchmarks.synth import write_audio


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise, unit RMS. Returns float32[n]."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (pink / _rms(pink)).astype(np.float32)


def mix_at_snr(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``noise`` scaled to the signal-to-noise ratio ``snr_db`` (by RMS)."""
    noise = np.resize(noise, samples.size)
    scale = _rms(samples) / (_rms(noise) * 10 ** (snr_db / 20))
    return (samples + scale * noise).astype(np.float32)


def add_pink_noise(samples, sample_rate, rng, *, snr_db: float) -> np.ndarray:
    return mix_at_snr(samples, pink_noise(samples.size, rng), snr_db)


def babble(speech: list[np.ndarray], n: int, rng: np.random.Generator, voices: int = 6) -> np.ndarray:
    """Several talkers at once: random excerpts of ``speech`` tracks summed. Returns float32[n]."""
    out = np.zeros(n, np.float64)
    for _ in range(voices):
        track = speech[int(rng.integers(len(speech)))]
        if track.size <= n:
            piece = np.resize(track, n)
        else:
            start = int(rng.integers(0, track.size - n))
            piece = track[start : start + n]
        out += piece / _rms(piece)
    return out.astype(np.float32)


def reverb(samples, sample_rate, rng, *, rt60_s: float = 0.6) -> np.ndarray:
    """A room: convolution with exponentially decaying noise (RT60 ``rt60_s``), 30 % wet."""
    length = int(rt60_s * sample_rate)
    t = np.arange(length) / sample_rate
    impulse = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    impulse[0] = 0.0
    wet = signal.fftconvolve(samples, impulse)[: samples.size]
    wet *= _rms(samples) / _rms(wet)
    return (0.7 * samples + 0.5 * wet).astype(np.float32)


def change_speed(samples, sample_rate, rng, *, speed: float) -> np.ndarray:
    """Play ``speed`` times faster, tempo and pitch together (resampling, as tape or DJ decks)."""
    up, down = _ratio(1.0 / speed)
    return signal.resample_poly(samples, up, down).astype(np.float32)


def _ratio(x: float, limit: int = 1000) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(x).limit_denominator(limit)
    return f.numerator, f.denominator


def change_tempo(samples, sample_rate, rng, *, rate: float) -> np.ndarray:
    """Tempo times ``rate`` at constant pitch (phase vocoder, librosa)."""
    import librosa

    return librosa.effects.time_stretch(samples, rate=rate).astype(np.float32)


def change_pitch(samples, sample_rate, rng, *, semitones: float) -> np.ndarray:
    """Pitch shifted by ``semitones`` at constant tempo (librosa)."""
    import librosa

    return librosa.effects.pitch_shift(samples, sr=sample_rate, n_steps=semitones).astype(np.float32)


def gain(samples, sample_rate, rng, *, db: float) -> np.ndarray:
    return (samples * 10 ** (db / 20)).astype(np.float32)


def clip(samples, sample_rate, rng, *, drive_db: float = 18.0) -> np.ndarray:
    """Hard clipping after ``drive_db`` of gain over a signal normalised to peak 0.5."""
    peak = max(1e-9, float(np.abs(samples).max()))
    return np.clip(samples / peak * 0.5 * 10 ** (drive_db / 20), -1.0, 1.0).astype(np.float32)


def reencode(samples, sample_rate, rng, *, suffix: str, bit_rate: int) -> np.ndarray:
    """Round trip through a lossy codec (``.mp3``, ``.m4a``, ``.amr``) and back to samples."""
    from nanhu.engine.media import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        path = write_audio(Path(tmp) / f"q{suffix}", samples, sample_rate, bit_rate=bit_rate)
        return load_audio(path, sample_rate=sample_rate)


def embed(samples, sample_rate, rng, *, filler: np.ndarray, total_s: float = 60.0):
    """Hide the excerpt at a random point of a longer unrelated recording.

    Returns (signal float32[total], start_s) — the excerpt's position in the long signal.
    """
    n = int(total_s * sample_rate)
    base = np.resize(filler, n).astype(np.float32) * 0.5
    start = int(rng.integers(0, n - samples.size))
    base[start : start + samples.size] = samples
    return base, start / sample_rate


def to_wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes (what the benchmark hands to ``fingerprint_media``)."""
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


#: condition name -> (function, keyword arguments). Noise conditions are built in the bench.
CONDITIONS: dict[str, tuple] = {
    "clean": (None, {}),
    "mp3-128k": (reencode, {"suffix": ".mp3", "bit_rate": 128_000}),
    "aac-48k": (reencode, {"suffix": ".m4a", "bit_rate": 48_000}),
    "amr-nb-12.2k": (reencode, {"suffix": ".amr", "bit_rate": 12_200}),
    **{f"pink-snr{snr}": (add_pink_noise, {"snr_db": snr}) for snr in (10, 5, 0, -5)},
    **{f"babble-snr{snr}": ("babble", {"snr_db": snr}) for snr in (10, 5, 0, -5)},
    "reverb": (reverb, {}),
    **{f"speed-{s}": (change_speed, {"speed": s})
       for s in (0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2)},
    "speed-0.97": (change_speed, {"speed": 0.97}),
    "speed-1.03": (change_speed, {"speed": 1.03}),
    "tempo-0.95": (change_tempo, {"rate": 0.95}),
    "tempo-1.05": (change_tempo, {"rate": 1.05}),
    "pitch-1": (change_pitch, {"semitones": -1.0}),
    "pitch+1": (change_pitch, {"semitones": 1.0}),
    "pitch-2": (change_pitch, {"semitones": -2.0}),
    "pitch+2": (change_pitch, {"semitones": 2.0}),
    # a commentator talking over the copy, and a second song under it, both as loud as it
    "speech-over-0dB": ("speech-over", {"snr_db": 0.0}),
    "song-under-0dB": ("song-under", {"snr_db": 0.0}),
    "gain-20dB": (gain, {"db": -20.0}),
    "clipping": (clip, {}),
    "embedded-60s": ("embed", {}),
}


def speed_of(condition: str) -> float:
    """The true speed (query plays this many times faster) a condition applies."""
    if condition.startswith("speed-"):
        return float(condition.split("-", 1)[1])
    if condition.startswith("tempo-"):
        return float(condition.split("-", 1)[1])
    return 1.0


#: an excerpt quieter than this (RMS, dB below full scale) is silence, not a copy of anything:
#: music's quiet passages sit at -40 to -50 dBFS; tracks that end in tens of seconds of
#: digital zeros (a game's music cut to a loop) sit at minus infinity
SILENCE_DBFS = -60.0


def audible_offset(samples: np.ndarray, sample_rate: int, offset_s: float, length_s: float,
                   max_offset_s: float, rng: np.random.Generator, *, tries: int = 20) -> float:
    """``offset_s``, or, when the ``length_s`` seconds of ``samples`` (float[n], mono) from it
    are silence (RMS under :data:`SILENCE_DBFS`), another offset in 0..``max_offset_s`` drawn
    from ``rng`` whose excerpt is not (the last one tried after ``tries``). Seconds."""
    floor = 10 ** (SILENCE_DBFS / 20)
    width = int(length_s * sample_rate)
    offset = offset_s
    for _ in range(tries):
        start = int(offset * sample_rate)
        if _rms(samples[start:start + width]) >= floor:
            return offset
        offset = float(rng.uniform(0, max(max_offset_s, 0.0)))
    return offset
