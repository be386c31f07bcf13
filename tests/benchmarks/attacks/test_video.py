"""Fast tests of the video attacks: geometry, frame counts, frame rates and the mp4 round trip,
on a tiny generated clip (160x90, 10 fps, 2 s, with a soundtrack)."""

import io
from pathlib import Path

import av
import numpy as np
import pytest

from nanhu.benchmarks.attacks import video as va
from nanhu.benchmarks.attacks import video_clips as vc
from nanhu.benchmarks.synth import music_like, write_video

W, H, FPS, SECONDS = 160, 90, 10, 2.0
N = int(FPS * SECONDS)


def _frames(seed: int) -> np.ndarray:
    """Moving textured frames, uint8 [N, H, W, 3]; different seeds give different pictures."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    base = rng.integers(0, 255, 3)
    frames = []
    for i in range(N):
        r = (xx * 255 // W + 7 * i + base[0]) % 256
        g = (yy * 255 // H + base[1]) % 256
        b = (((xx + 3 * i) // 8 + yy // 8) % 2) * 200 + base[2] % 55
        frames.append(np.stack([r, g, b], axis=2))
    return np.array(frames, np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("video-attacks")
    out = {}
    for name, seed in (("ref", 1), ("other", 2)):
        out[name] = write_video(tmp / f"{name}.mp4", _frames(seed), FPS,
                                audio=music_like(SECONDS, seed=seed, sample_rate=22050),
                                sample_rate=22050, crf=18)
    return out


@pytest.fixture(scope="module")
def clip(files) -> vc.Clip:
    return vc.read_window(files["ref"], 0.0, SECONDS, size=None)


@pytest.fixture(scope="module")
def other(files) -> vc.Clip:
    return vc.read_window(files["other"], 0.0, SECONDS, size=None)


def _probe(data: bytes) -> tuple[int, int, int, float, bool]:
    """(width, height, decoded frames, average fps, has audio) of mp4 bytes."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return (stream.width, stream.height, frames, float(stream.average_rate),
                bool(container.streams.audio))


def test_read_window_cuts_the_requested_span(files, clip):
    assert clip.frames.shape == (N, H, W, 3)
    assert clip.fps == FPS
    assert clip.audio.size == int(SECONDS * vc.AUDIO_RATE)
    part = vc.read_window(files["ref"], 0.5, 1.0, size=(80, 46))
    assert part.frames.shape == (10, 46, 80, 3)
    assert part.audio.size == vc.AUDIO_RATE
    # The window starts at frame 5 of the file: same picture as the full clip's frame 5.
    full = vc.read_window(files["ref"], 0.0, SECONDS, size=(80, 46))
    assert np.abs(part.frames[0].astype(int) - full.frames[5]).mean() < 1.0
    # Same sound from 0.5 s (to within the sub-sample phase a fresh resampler starts at).
    assert np.corrcoef(part.audio[1000:15000], full.audio[9000:23000])[0, 1] > 0.95


#: attack -> (width, height, frames, fps) expected from the 160x90, 20-frame, 10 fps clip
EXPECTED = {
    "360p": (160, 90, 20, 10), "low-bitrate-150k": (160, 90, 20, 10),
    "240p": (426, 240, 20, 10), "letterbox": (160, 120, 20, 10), "pillarbox": (214, 90, 20, 10),
    "crop-10%": (160, 90, 20, 10), "crop-20%": (160, 90, 20, 10), "hflip": (160, 90, 20, 10),
    "brightness+20%": (160, 90, 20, 10), "contrast-0.6": (160, 90, 20, 10),
    "gamma-1.6": (160, 90, 20, 10), "grayscale": (160, 90, 20, 10),
    "blur-3px": (160, 90, 20, 10), "noise-20": (160, 90, 20, 10), "caption": (160, 90, 20, 10),
    "logo": (160, 90, 20, 10), "fps-15": (160, 90, 30, 15), "fps-60": (160, 90, 120, 60),
    "speed-0.8": (160, 90, 25, 10), "speed-1.25": (160, 90, 16, 10),
    "pip-50%": (160, 90, 20, 10), "side-by-side": (320, 90, 20, 10), "rotate-90": (90, 160, 20, 10),
    "crop10+flip+bright": (160, 90, 20, 10), "letterbox+logo+360p": (480, 360, 20, 10),
    "soundtrack-replaced": (160, 90, 20, 10),
    "crop-30%-off-centre": (160, 90, 20, 10), "blurred-background": (160, 90, 20, 10),
    "letterbox-1:1": (160, 160, 20, 10), "pip-40%": (160, 90, 20, 10),
    "top-bottom": (160, 180, 20, 10), "rotate-5+zoom": (160, 90, 20, 10),
    "zoom-1.3x": (160, 90, 20, 10),
}


def test_every_attack_is_covered():
    assert set(EXPECTED) == set(va.ATTACKS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_attack_geometry_and_round_trip(name, clip, other):
    attack = va.ATTACKS[name]
    attacked = attack.apply(clip, np.random.default_rng(0), other=other)
    width, height, frames, fps = EXPECTED[name]
    assert attacked.frames.dtype == np.uint8
    assert attacked.frames.shape == (frames, height, width, 3)
    assert attacked.fps == fps
    # The soundtrack still covers the picture (speed changes resample it with the frames).
    assert abs(attacked.audio.size / attacked.sample_rate - attacked.duration_s) < 0.15
    assert _probe(attack.encode(attacked)) == (width, height, frames, fps, True)


def test_low_bitrate_encode_is_smaller(clip):
    plain = va.ATTACKS["360p"].encode(clip)
    low = vc.encode_clip(clip, bit_rate=20_000)
    assert len(low) < len(plain)


def test_pixel_attacks_do_what_they_say(clip):
    rng = np.random.default_rng(0)
    frames = clip.frames.astype(int)
    assert np.array_equal(va.hflip(clip, rng).frames, clip.frames[:, :, ::-1])
    assert va.brightness(clip, rng, delta=0.2).frames.astype(int).mean() > frames.mean() + 30
    gray = va.grayscale(clip, rng).frames
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert va.contrast(clip, rng, factor=0.6).frames.std() < 0.7 * clip.frames.std()
    assert va.blur(clip, rng, sigma=3.0).frames.astype(int).std() < frames.std()
    noisy = va.noise(clip, rng, sigma=20.0).frames.astype(int)
    assert 10 < np.abs(noisy - frames).mean() < 25
    rotated = va.rotate90(clip, rng).frames
    assert np.array_equal(rotated[0], np.rot90(clip.frames[0]))


def test_overlays_stay_in_their_regions(clip):
    rng = np.random.default_rng(0)
    changed = np.any(va.caption(clip, rng).frames != clip.frames, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.min() > H // 2 and changed.mean() <= 0.12  # a low box of ~10 % of the frame
    changed = np.any(va.logo(clip, rng).frames != clip.frames, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.max() < H // 2 and cols.min() > W // 2  # top-right corner
    assert 0.05 < changed.mean() < 0.15


def test_composites_hold_the_reference(clip, other):
    rng = np.random.default_rng(0)
    pip = va.picture_in_picture(clip, rng, other=other).frames
    sw, sh = va._even(W / 2), va._even(H / 2)
    small = va.resize_frames(clip.frames, sw, sh)
    mx, my = int(0.04 * W), int(0.04 * H)
    corners = [pip[:, y:y + sh, x:x + sw] for y in (my, H - sh - my) for x in (mx, W - sw - mx)]
    assert min(np.abs(c.astype(int) - small).mean() for c in corners) < 1.0
    pair = va.side_by_side(clip, rng, other=other).frames
    halves = (pair[:, :, :W], pair[:, :, W:])
    assert any(np.array_equal(h, clip.frames) for h in halves)
    stacked = va.top_bottom(clip, rng, other=other).frames
    assert any(np.array_equal(h, clip.frames) for h in (stacked[:, :H], stacked[:, H:]))
    framed = va.blurred_background(clip, rng).frames
    sw, sh = va._even(W * 0.7), va._even(H * 0.7)
    inner = framed[:, (H - sh) // 2:(H - sh) // 2 + sh, (W - sw) // 2:(W - sw) // 2 + sw]
    assert np.abs(inner.astype(int) - va.resize_frames(clip.frames, sw, sh)).mean() < 1.0
    square = va.letterbox_square(clip, rng).frames
    assert square[:, :(W - H) // 2].max() == 0 and square[:, -((W - H) // 2):].max() == 0
    swapped = va.replace_soundtrack(clip, rng, other=other)
    assert np.array_equal(swapped.frames, clip.frames)
    assert not np.allclose(swapped.audio, clip.audio)


def test_retiming_plays_faster_and_slower():
    fast = va._retime_indices(100, 25.0, 25.0, 1.25)
    slow = va._retime_indices(100, 25.0, 25.0, 0.8)
    assert fast.size == 80 and slow.size == 125
    assert np.all(np.diff(fast) >= 1) and np.all(np.diff(slow) >= 0)
    assert fast[-1] <= 99 and slow[-1] <= 99
    doubled = va._retime_indices(100, 25.0, 50.0, 1.0)
    assert doubled.size == 200 and np.array_equal(doubled[::2], np.arange(100))
