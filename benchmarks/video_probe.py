"""Probe of the video keyframe embeddings: attack robustness and fingerprinting cost.

Generated footage (textured, panning shots with moving shapes and hard cuts, defined in
continuous time so that any frame rate or timestamp pattern renders the same content) and, when
the real-media cache is present, real footage and photographs. For each attack the probe prints
the cosine similarity of attacked keyframes to their original keyframes next to the best
similarity any unrelated keyframe reaches, and the time a fingerprint costs relative to a plain
full decode of the same file.

    python -m nanhu.benchmarks.video_probe [--quick]

The generator and the attacks are also the fixtures of ``tests/engine/test_video.py``.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

CACHE = Path(os.environ.get("NANHU_CACHE", Path.home() / ".cache" / "nanhu"))
FOOTAGE = (
    "opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi",
    "opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "opencv-doc/usr/share/doc/opencv-doc/examples/data/tree.avi",
    "python3-imageio/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
    "kphotoalbum/usr/share/kphotoalbum/demo/movie.avi",
)


# --- generated footage ----------------------------------------------------------------------


def smooth_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colour texture with structure at several scales: float32[h, w, 3], 0..255.

    White noise shaped in the Fourier domain by a sum of Gaussians (one FFT, fast at any size).
    """
    noise = rng.standard_normal((height, width, 3)).astype(np.float32)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f2 = fy**2 + fx**2
    gain = np.zeros_like(f2)
    for sigma, amplitude in ((height / 6, 1.0), (height / 16, 0.6), (height / 40, 0.35),
                             (1.5, 0.15)):
        # 2 sqrt(pi) sigma equalises the variance each Gaussian-filtered octave would have.
        gain += amplitude * 2.0 * np.sqrt(np.pi) * sigma * np.exp(-2 * np.pi**2 * sigma**2 * f2)
    out = np.fft.irfft2(np.fft.rfft2(noise, axes=(0, 1)) * gain[..., None], s=(height, width),
                        axes=(0, 1)).astype(np.float32)
    out = out @ rng.uniform(0.3, 1.0, (3, 3)).astype(np.float32)  # correlated channels
    out = (out - out.mean((0, 1))) / (out.std() + 1e-6)
    return np.clip(rng.uniform(70, 180, 3) + 45 * out, 0, 255)


class Footage:
    """Generated video defined in continuous time: shots of 2-4 s that pan over a texture,
    with 1-3 moving ellipses each, joined by hard cuts. ``frames(times_s)`` renders any instants,
    so 25, 30, 60 fps or irregular timestamps show the same content at the same times."""

    def __init__(self, seed: int, *, width: int = 320, height: int = 180,
                 duration_s: float = 12.0) -> None:
        rng = np.random.default_rng(seed)
        self.width, self.height, self.duration_s = width, height, duration_s
        self.shots = []
        start = 0.0
        while start < duration_s:
            length = float(rng.uniform(2.0, 4.0))
            canvas_h, canvas_w = int(height * 1.6), int(width * 1.6)
            room = np.array([canvas_h - height, canvas_w - width], np.float64)
            shapes = [(rng.uniform(0, 1, 2), rng.uniform(-0.12, 0.12, 2), rng.uniform(0.05, 0.2),
                       rng.uniform(0, 255, 3)) for _ in range(int(rng.integers(1, 4)))]
            self.shots.append((start, length, smooth_field(rng, canvas_h, canvas_w),
                               rng.uniform(0, 1, 2) * room, rng.uniform(0, 1, 2) * room, shapes))
            start += length
        self._grid = np.mgrid[0:height, 0:width].astype(np.float32)

    def frames(self, times_s: np.ndarray) -> np.ndarray:
        """RGB uint8[n, h, w, 3] at content times ``times_s`` (s)."""
        yy, xx = self._grid
        out = np.empty((len(times_s), self.height, self.width, 3), np.uint8)
        starts = np.array([s[0] for s in self.shots])
        for i, t in enumerate(np.asarray(times_s, np.float64)):
            start, length, canvas, pan_a, pan_b, shapes = self.shots[
                int(np.searchsorted(starts, t, side="right")) - 1]
            a = min(max((t - start) / length, 0.0), 1.0)
            oy, ox = np.rint(pan_a + a * (pan_b - pan_a)).astype(int)
            frame = canvas[oy:oy + self.height, ox:ox + self.width].copy()
            for position, velocity, radius, colour in shapes:
                cy, cx = (position + velocity * (t - start)) * (self.height, self.width)
                r = radius * self.height
                frame[(xx - cx) ** 2 + ((yy - cy) * 1.3) ** 2 < r * r] = colour
            out[i] = frame.astype(np.uint8)
        return out

    def at_fps(self, fps: float, start_s: float = 0.0, end_s: float | None = None,
               speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Frames at a constant rate from content time ``start_s``, played ``speed`` times
        faster. Returns (frames, presentation times float64[n] from 0)."""
        end_s = self.duration_s if end_s is None else end_s
        pts = np.arange(0.0, (end_s - start_s) / speed - 1e-9, 1.0 / fps)
        return self.frames(start_s + pts * speed), pts


def encode(path: Path, frames: np.ndarray, times_s: np.ndarray | None = None, *,
           fps: float = 25.0, crf: int = 23, bit_rate: int | None = None,
           codec: str = "libx264") -> Path:
    """Encode RGB frames; ``times_s`` gives each frame's presentation time (variable rate).

    frames : ndarray [shape=(n, h, w, 3)], uint8 (odd sizes are cut to even).
    """
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    time_base = Fraction(1, 1000) if times_s is not None else Fraction(1, int(round(fps * 100)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        if bit_rate:
            stream.bit_rate = bit_rate
            stream.options = {"preset": "veryfast"}
        else:
            stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[:height, :width]), format="rgb24")
            t = times_s[i] if times_s is not None else i / fps
            frame.pts, frame.time_base = int(round(t / time_base)), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


# --- attacks (RGB uint8[n, h, w, 3] -> RGB uint8) --------------------------------------------


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255).astype(np.uint8)


def _even(x: np.ndarray) -> np.ndarray:
    return x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize RGB frames with FFmpeg's scaler (area averaging when shrinking)."""
    return np.stack([
        av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        .reformat(width, height, interpolation="AREA").to_ndarray()
        for f in frames
    ])


def pad(frames: np.ndarray, top: int, left: int, value: int = 0) -> np.ndarray:
    n, h, w, _ = frames.shape
    out = np.full((n, h + 2 * top, w + 2 * left, 3), value, np.uint8)
    out[:, top:top + h, left:left + w] = frames
    return out


def crop(frames: np.ndarray, top: float, bottom: float, left: float, right: float) -> np.ndarray:
    """Cut the given shares off each side and scale back to the original size."""
    n, h, w, _ = frames.shape
    part = frames[:, int(h * top):h - int(h * bottom), int(w * left):w - int(w * right)]
    return resize(part, h, w)


def overlay(frames: np.ndarray, *, area: float, where: str, seed: int = 7) -> np.ndarray:
    """An opaque, high-contrast textured logo covering ``area`` of the frame."""
    n, h, w, _ = frames.shape
    side = np.sqrt(area)
    lh, lw = int(h * side), int(w * side)
    texture = np.random.default_rng(seed).uniform(0, 255, (6, 6, 3))
    patch = np.repeat(np.repeat(texture, -(-lh // 6), 0), -(-lw // 6), 1)[:lh, :lw]
    out = frames.copy()
    y0, x0 = {"corner": (0, w - lw), "centre": ((h - lh) // 2, (w - lw) // 2)}[where]
    out[:, y0:y0 + lh, x0:x0 + lw] = patch.astype(np.uint8)
    return out


def caption(frames: np.ndarray, *, share: float = 0.15) -> np.ndarray:
    """A darkened band along the bottom with white word-like blocks on it."""
    n, h, w, _ = frames.shape
    band = int(h * share)
    out = frames.astype(np.float32)
    out[:, h - band:] *= 0.3
    for k in range(16):
        x0 = int(w * (0.1 + 0.05 * k))
        if k % 5 != 4:
            out[:, h - band + band // 4:h - band // 4, x0:x0 + int(w * 0.035)] = 240
    return _u8(out)


def photometric(frames: np.ndarray, *, brightness: float = 0.0, contrast: float = 1.0,
                gamma: float = 1.0, saturation: float = 1.0) -> np.ndarray:
    """Saturation change around the luma, then gamma, contrast about mid-grey, brightness."""
    x = frames
    if saturation != 1.0:
        f = frames.astype(np.float32)
        luma = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
        f -= luma[..., None]
        f *= saturation
        f += luma[..., None]
        x = _u8(f)
    levels = np.arange(256, dtype=np.float64)
    lut = (255.0 * (levels / 255.0) ** gamma - 128.0) * contrast + 128.0 + brightness
    return _u8(lut)[x]


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(frames, (0, sigma, sigma, 0))


def noise(frames: np.ndarray, sigma: float, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _u8(frames + sigma * rng.standard_normal(frames.shape, dtype=np.float32))


def downscale(frames: np.ndarray, factor: float) -> np.ndarray:
    n, h, w, _ = frames.shape
    return resize(frames, int(h / factor) // 2 * 2, int(w / factor) // 2 * 2)


#: name -> (attack on RGB frames, encoder bit rate in bit/s or None for crf 23)
ATTACKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int | None]] = {
    "reencode 150 kbit/s": (lambda f: f, 150_000),
    "downscale 1/3 (1080p->360p)": (lambda f: downscale(f, 3), None),
    "letterbox": (lambda f: pad(f, f.shape[1] // 4, 0), None),
    "pillarbox": (lambda f: pad(f, 0, f.shape[2] // 5), None),
    "crop 10% each side": (lambda f: crop(f, 0.1, 0.1, 0.1, 0.1), None),
    "crop 20% left": (lambda f: crop(f, 0, 0, 0.2, 0), None),
    "hflip": (lambda f: f[:, :, ::-1], None),
    "brightness +40": (lambda f: photometric(f, brightness=40), None),
    "contrast x0.5": (lambda f: photometric(f, contrast=0.5), None),
    "gamma 0.5": (lambda f: photometric(f, gamma=0.5), None),
    "gamma 2.0": (lambda f: photometric(f, gamma=2.0), None),
    "saturation x2": (lambda f: photometric(f, saturation=2.0), None),
    "grayscale": (lambda f: photometric(f, saturation=0.0), None),
    "blur sigma 1.5px@270p": (lambda f: blur(f, 1.5), None),
    "noise sigma 20": (lambda f: noise(f, 20.0), None),
    "logo 15% corner": (lambda f: overlay(f, area=0.15, where="corner"), None),
    "logo 15% centre": (lambda f: overlay(f, area=0.15, where="centre"), None),
    "caption band 15%": (caption, None),
    "flip+crop 10%+logo": (
        lambda f: overlay(crop(f[:, :, ::-1], 0.05, 0.05, 0.05, 0.05), area=0.08,
                          where="corner"), None),
    "letterbox+gamma+noise+300kbit/s": (
        lambda f: noise(photometric(pad(f, f.shape[1] // 6, 0), gamma=0.7), 8), 300_000),
}


# --- measurement ----------------------------------------------------------------------------


def _decode_rgb(path: str, max_side: int = 480, max_s: float = 30.0):
    """Real footage as RGB frames (scaled so the longer side is at most ``max_side``)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, times = [], []
        for frame in container.decode(stream):
            if frame.time is not None and frame.time > max_s:
                break
            scale = min(1.0, max_side / max(frame.width, frame.height))
            w, h = int(frame.width * scale) // 2 * 2, int(frame.height * scale) // 2 * 2
            frames.append(frame.reformat(w, h, format="rgb24").to_ndarray())
            times.append(float(frame.time or 0.0))
        rate = float(stream.average_rate or 25)
    times = np.asarray(times) - times[0]
    if np.any(np.diff(times) <= 0):  # AVI and friends may carry no usable timestamps
        times = np.arange(len(frames)) / rate
    return np.stack(frames), times, rate


def _nearest_sims(query, reference) -> np.ndarray:
    """Best similarity of each query keyframe to reference keyframes within +-0.3 s."""
    (qv, qt), (rv, rt) = query, reference
    sims = qv @ rv.T
    sims[np.abs(qt[:, None] - rt[None, :]) > 0.3] = -1.0
    return sims.max(1)


def _plain_decode_s(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from nanhu.engine import video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="generated footage only")
    parser.add_argument("--cost", action="store_true", help="only the cost measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    params = video.VideoParams()
    tmp = Path(tempfile.mkdtemp(prefix="nanhu-video-probe-"))
    if not args.cost:
        _robustness(video, params, tmp, quick=args.quick)
    _cost(video, tmp, quick=args.quick)
    return 0


def _robustness(video, params, tmp: Path, *, quick: bool) -> None:
    """Attacked vs original keyframe similarity, next to the best unrelated similarity."""
    sources: list[tuple[str, np.ndarray, np.ndarray, float]] = []
    for seed in range(3):
        footage = Footage(seed, width=480, height=270, duration_s=16.0)
        frames, times = footage.at_fps(12.5)  # the rate hardly matters at 2 keyframes/s
        sources.append((f"generated-{seed}", frames, times, 12.5))
    if not quick:
        for rel in FOOTAGE:
            path = CACHE / "debs" / rel
            if path.exists():
                sources.append((path.name, *_decode_rgb(str(path))))
    originals = {}
    for name, frames, times, fps in sources:
        path = encode(tmp / f"{name}.mp4", frames, times, fps=fps, crf=18)
        originals[name] = _print_of(video, path, params)
    # Unrelated pool: other generated videos and, when cached, photographs as 1-frame "videos".
    pool = [_print_of(video, encode(tmp / f"other-{s}.mp4", *Footage(
        100 + s, width=480, height=270, duration_s=16.0).at_fps(12.5), fps=12.5), params)[0]
        for s in range(4)]
    photos = sorted(p for pattern in ("*backgrounds*", "*wallpapers*")
                    for p in glob.glob(str(CACHE / "debs" / pattern / "**" / "*.jpg"),
                                       recursive=True))[:300]
    if photos and not quick:
        stills = [_decode_rgb(p, max_side=480)[0][0] for p in photos]
        stills = [s[: min(x.shape[0] for x in stills) // 2 * 2] for s in stills]
        smallest = min(s.shape[1] for s in stills)
        stills = np.stack([s[:, :smallest] for s in stills])
        pool.append(video.frame_embeddings(stills, params=params)[0])
    print(f"video-v{params.version}: d={params.dim}, {params.sample_fps:g} keyframes/s; "
          f"{len(sources)} sources, unrelated pool {sum(len(p) for p in pool)} keyframes")
    print("true: similarity of an attacked keyframe to its original (best within +-0.3 s); "
          "unrel: its best similarity to any unrelated keyframe")
    print(f"{'attack':34s} {'true med':>8s} {'true p10':>8s} {'gen med':>8s} {'real med':>8s} "
          f"{'unrel med':>9s} {'unrel max':>9s} {'true>unrel':>10s}")
    for attack, (fn, bit_rate) in ATTACKS.items():
        true_all, unrel_all, generated = [], [], []
        for name, frames, times, fps in sources:
            attacked = _even(fn(frames))
            path = encode(tmp / "attacked.mp4", attacked, times, fps=fps, bit_rate=bit_rate)
            query = _print_of(video, path, params)
            if len(query[0]) == 0:
                continue
            true_all.append(_nearest_sims(query, originals[name]))
            generated.append(np.full(len(true_all[-1]), name.startswith("generated-")))
            others = [originals[o][0] for o in originals if o != name] + pool
            unrel_all.append((query[0] @ np.concatenate(others).T).max(1))
        t, u, g = np.concatenate(true_all), np.concatenate(unrel_all), np.concatenate(generated)
        real = f"{np.median(t[~g]):8.3f}" if (~g).any() else f"{'-':>8s}"
        print(f"{attack:34s} {np.median(t):8.3f} {np.percentile(t, 10):8.3f} "
              f"{np.median(t[g]):8.3f} {real} {np.median(u):9.3f} {u.max():9.3f} "
              f"{np.mean(t > u):10.3f}")
    # Sampling phase: the same video cut 0.25 s (half a keyframe period) later.
    footage = Footage(0, width=480, height=270, duration_s=16.0)
    frames, times = footage.at_fps(12.5, start_s=0.25)
    shifted = _print_of(video, encode(tmp / "phase.mp4", frames, times, fps=12.5), params)
    ref_v, ref_t = originals["generated-0"]
    phase = _nearest_sims((shifted[0], shifted[1] + 0.25), (ref_v, ref_t))
    print(f"{'phase +0.25 s (nearest keyframe)':34s} {np.median(phase):8.3f} "
          f"{np.percentile(phase, 10):8.3f}")


def _cost(video, tmp: Path, *, quick: bool) -> None:
    """Fingerprinting time over a plain threaded full decode of the same file."""
    print("\ncost: fingerprint / plain threaded decode of the same file")
    cost_files = [("generated 1280x720 25fps 2 Mbit/s", encode(
        tmp / "cost.mp4", *Footage(5, width=1280, height=720, duration_s=10.0).at_fps(25.0),
        bit_rate=2_000_000))]
    if not quick:
        cost_files += [(rel.split("/")[-1], CACHE / "debs" / rel) for rel in FOOTAGE
                       if (CACHE / "debs" / rel).exists()]
    for label, path in cost_files:
        plain, fp, nonref = [], [], []
        for _ in range(5):  # interleaved, best of 5: the machine may be shared
            plain.append(_plain_decode_s(path))
            fp.append(_timed(video.fingerprint_video, path))
            nonref.append(_timed(video.fingerprint_video, path,
                                 params=video.VideoParams(skip_nonref=True)))
        print(f"  {label:34s} decode {min(plain):6.3f} s  fingerprint {min(fp):6.3f} s  "
              f"ratio {min(fp) / min(plain):4.2f}  (skip_nonref: {min(nonref) / min(plain):4.2f})")


def _print_of(video, path: Path, params) -> tuple[np.ndarray, np.ndarray]:
    fp = video.fingerprint_video(path, params=params)
    if fp is None:
        return np.zeros((0, params.dim), np.float32), np.zeros(0, np.float32)
    return fp.vectors, fp.times_s


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
