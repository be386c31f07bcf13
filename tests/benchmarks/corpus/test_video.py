"""Fast tests of the video corpus builder's pure parts and a tiny render/encode round trip."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from nanhu.benchmarks.corpus.video import (
    MANIFEST_NAME,
    Shot,
    VideoPlan,
    _allocate_tiles,
    _is_complete,
    load_video_corpus,
    plan_corpus,
    render_video,
)
from nanhu.benchmarks.corpus.video_render import (
    camera_path,
    encode_mp4,
    read_music,
    render_footage_shot,
    render_photo_shot,
)
from nanhu.benchmarks.corpus.video_sources import Clip, PhotoTile, Track, tile_grid


def _photo(height: int = 540, width: int = 960) -> np.ndarray:
    """A synthetic textured RGB 'photograph', uint8 [shape=(height, width, 3)]."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 255) // width, (yy * 255) // height,
                    ((xx // 16 + yy // 16) % 2) * 255], axis=2)
    return rgb.astype(np.uint8)


def _write_tone(path: Path, *, seconds: float, sample_rate: int = 44_100) -> None:
    """A mono 440 Hz FLAC file."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode())


def test_tile_grid_covers_the_image_with_disjoint_boxes() -> None:
    boxes = tile_grid(2560, 1600, min_tile=(800, 450))
    assert len(boxes) == 9
    mask = np.zeros((1600, 2560), np.int32)
    for x, y, w, h in boxes:
        assert w >= 800 and h >= 450
        mask[y:y + h, x:x + w] += 1
    assert (mask == 1).all()
    assert tile_grid(640, 400) == [(0, 0, 640, 400)]
    assert len(tile_grid(6000, 4000, max_grid=5)) == 25


@pytest.mark.parametrize("motion", ["zoom_in", "zoom_out", "pan", "drift"])
def test_camera_path_stays_inside_the_tile_and_is_deterministic(motion: str) -> None:
    box = (100, 40, 1200, 800)
    boxes = camera_path(box, 75, aspect=16 / 9, motion=motion, rng=np.random.default_rng(3))
    again = camera_path(box, 75, aspect=16 / 9, motion=motion, rng=np.random.default_rng(3))
    assert boxes.shape == (75, 4)
    np.testing.assert_array_equal(boxes, again)
    np.testing.assert_allclose(boxes[:, 2] / boxes[:, 3], 16 / 9)
    assert (boxes[:, 0] >= 100 - 1e-9).all() and (boxes[:, 1] >= 40 - 1e-9).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 1300 + 1e-9).all()
    assert (boxes[:, 1] + boxes[:, 3] <= 840 + 1e-9).all()
    moved = np.abs(boxes[-1] - boxes[0]).max()
    assert moved > 5.0  # the camera really moves


def test_camera_path_zoom_in_narrows_the_window() -> None:
    boxes = camera_path((0, 0, 1600, 900), 50, aspect=16 / 9, motion="zoom_in",
                        rng=np.random.default_rng(0))
    assert boxes[0, 2] == pytest.approx(1600)
    assert boxes[-1, 2] < 0.9 * 1600
    assert (np.diff(boxes[:, 2]) <= 1e-9).all()
    with pytest.raises(ValueError, match="unknown camera motion"):
        camera_path((0, 0, 100, 100), 5, aspect=1.0, motion="spin",
                    rng=np.random.default_rng(0))


def test_render_photo_shot_gives_frames_of_the_right_count_size_and_content() -> None:
    image = _photo()
    boxes = camera_path((0, 0, 960, 540), 12, aspect=16 / 9, motion="pan",
                        rng=np.random.default_rng(1))
    first = [f.to_ndarray(format="rgb24") for f in render_photo_shot(image, boxes, width=320,
                                                                      height=180)]
    second = [f.to_ndarray(format="rgb24") for f in render_photo_shot(image, boxes, width=320,
                                                                       height=180)]
    assert len(first) == 12
    assert all(frame.shape == (180, 320, 3) for frame in first)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[-1])
    # the red ramp follows x: the frame's left column is redder where the window sits right
    left_x = boxes[:, 0] + 0.02 * boxes[:, 2]
    reds = np.array([frame[:, 3, 0].astype(float).mean() for frame in first])
    assert np.corrcoef(left_x, reds)[0, 1] > 0.9


def test_render_footage_shot_resamples_the_frame_rate_and_letterboxes(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * k + 30, np.uint8),
                                               format="rgb24")
            frame.pts = k
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode())
    frames = [f.to_ndarray(format="rgb24") for f in
              render_footage_shot(clip, n_frames=30, fps=25, width=160, height=90)]
    assert len(frames) == 30  # 1.2 s asked of a 1.0 s clip: the last frame holds
    assert all(frame.shape == (90, 160, 3) for frame in frames)
    assert frames[0][:, :20].max() < 20  # black bars beside a square picture
    levels = [float(frame[:, 80].mean()) for frame in frames]
    assert levels[0] < levels[12] < levels[24]
    assert levels[1] == pytest.approx(levels[0], abs=3)  # 25 fps from 10 fps repeats frames


def test_encode_round_trip_decodes_with_the_right_format(tmp_path: Path) -> None:
    music = tmp_path / "tone.flac"
    _write_tone(music, seconds=5.0)
    audio = read_music(music, start_s=1.0, duration_s=2.0)
    assert audio.shape == (2, 96_000) and audio.dtype == np.float32
    assert audio[:, :100].std() < 0.01 < audio[:, 48_000:50_000].std()  # faded in
    boxes = camera_path((0, 0, 960, 540), 50, aspect=16 / 9, motion="zoom_out",
                        rng=np.random.default_rng(2))
    path, twin = tmp_path / "tiny.mp4", tmp_path / "twin.mp4"
    for target in (path, twin):
        written = encode_mp4(target, render_photo_shot(_photo(), boxes, width=320, height=180),
                             audio, fps=25, width=320, height=180)
        assert written == 50
    assert path.read_bytes() == twin.read_bytes()  # a rebuild gives the same file
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 320, 180)
        assert video.average_rate == 25 and video.frames == 50
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (sound.codec_context.name, sound.sample_rate, sound.channels) == ("aac", 48_000, 2)
        assert sum(1 for _ in container.decode(video=0)) == 50
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert decoded.shape[1] == pytest.approx(96_000, abs=2048)
    assert decoded[:, 48_000:50_000].std() > 0.1


def test_render_video_is_resumable_only_for_the_same_plan(tmp_path: Path) -> None:
    photo = tmp_path / "debs" / "pics" / "p.png"
    photo.parent.mkdir(parents=True)
    with av.open(str(photo), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 960, 540, "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(_photo(), format="rgb24")))
        out.mux(stream.encode())
    (tmp_path / "debs" / "music").mkdir()
    _write_tone(tmp_path / "debs" / "music" / "t.flac", seconds=4.0)
    shots = [Shot("photo", "pics/p.png", 30, (0, 0, 480, 540), "pan"),
             Shot("photo", "pics/p.png", 20, (480, 0, 480, 540), "zoom_in")]
    plan = VideoPlan("ref-000", "reference", 320, 180, 25, Track("music/t.flac", 4.0), 0.5,
                     shots, rng_key=(0, 0))
    path = tmp_path / "ref-000.mp4"
    assert not _is_complete(path, plan)
    render_video(plan, path, tmp_path)
    assert _is_complete(path, plan)
    assert not list(tmp_path.glob(".*partial*"))
    moved = VideoPlan("ref-000", "reference", 320, 180, 25, Track("music/t.flac", 4.0), 0.5,
                      [shots[0], Shot("photo", "pics/p.png", 20, (480, 0, 480, 540), "pan")],
                      rng_key=(0, 0))
    assert moved.n_frames == plan.n_frames and not _is_complete(path, moved)


def test_allocate_tiles_never_gives_a_tile_twice() -> None:
    photos = {f"pkg/p{i}.jpg": [PhotoTile(f"pkg/p{i}.jpg", (k, 0, 1, 1)) for k in range(n)]
              for i, n in enumerate([9, 4, 4, 2, 1, 1])}
    given = _allocate_tiles(photos, [4, 4, 3, 3, 0], np.random.default_rng(0))
    assert [len(tiles) for tiles in given] == [4, 4, 3, 3, 0]
    flat = [tile for tiles in given for tile in tiles]
    assert len(set(flat)) == len(flat)
    assert len({tile.member for tile in given[0]}) == 4  # distinct photographs first


def _inventory() -> tuple[dict, list[Track], list[Track], list[Clip]]:
    photos = {f"pics/p{i:02d}.jpg": [PhotoTile(f"pics/p{i:02d}.jpg", (k * 800, 0, 800, 450))
                                     for k in range(4)] for i in range(60)}
    reference_music = [Track(f"game/t{i:02d}.ogg", 50.0 + 7 * i) for i in range(16)]
    negative_music = [Track(f"orch/t{i:02d}.ogg", 200.0) for i in range(6)]
    footage = [Clip("doc/long.avi", 79.5, 768, 576), Clip("doc/short.avi", 11.2, 720, 528)]
    return photos, reference_music, negative_music, footage


def test_plan_corpus_keeps_sources_apart_and_is_deterministic() -> None:
    plans = plan_corpus(*_inventory(), n_references=12, n_negatives=5, seed=4)
    again = plan_corpus(*_inventory(), n_references=12, n_negatives=5, seed=4)
    assert plans == again
    references = [p for p in plans if p.split == "reference"]
    negatives = [p for p in plans if p.split == "negative"]
    assert len(references) == 12 and len(negatives) == 5
    assert all(40.0 <= p.duration_s <= 120.0 for p in plans)
    assert all(p.duration_s <= p.music_start_s + p.duration_s <= p.music.duration_s
               for p in plans)
    assert len({p.music.member for p in plans}) == len(plans)  # one video per track
    assert {p.music.member[:4] for p in negatives} == {"orch"}
    tiles = [(s.member, s.box) for p in plans for s in {*p.shots} if s.kind == "photo"]
    per_video = [{(s.member, s.box) for s in p.shots if s.kind == "photo"} for p in plans]
    assert sum(map(len, per_video)) == len(set(tiles))  # no tile in two videos
    reference_photos = {s.member for p in references for s in p.shots if s.kind == "photo"}
    negative_photos = {s.member for p in negatives for s in p.shots if s.kind == "photo"}
    assert not reference_photos & negative_photos
    footage = [(p.id, s.member) for p in plans for s in p.shots if s.kind == "footage"]
    assert sorted(member for _, member in footage) == ["doc/long.avi", "doc/short.avi"]
    assert all(p.width / p.height == 16 / 9 and p.fps in (25, 30) for p in plans)
    for plan in plans:  # hard cuts every few seconds, never the same tile twice in a row
        photo_shots = [s for s in plan.shots if s.kind == "photo"]
        assert all(s.n_frames <= 8 * plan.fps for s in photo_shots)
        assert all(a.box != b.box or a.member != b.member
                   for a, b in zip(photo_shots, photo_shots[1:]))


def test_load_video_corpus_resolves_paths_and_checks_the_version(tmp_path: Path) -> None:
    manifest = {"version": 1, "seed": 0, "packages": [],
                "references": [{"id": "ref-000", "path": "video/ref-000.mp4"}],
                "negatives": [{"id": "neg-000", "path": "video/neg-000.mp4"}]}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    corpus = load_video_corpus(tmp_path)
    assert corpus["references"][0]["path"] == str(tmp_path / "video" / "ref-000.mp4")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        load_video_corpus(tmp_path)
