"""Synthetic videos with known action segments (`visionzoo data make-video-demo`, `--data video-demo`).

Each video is a textured background panning slowly, with a brightness drift and the odd scene cut (changes that
are not actions); an action is a striped object of its class's colour and stripe angle moving through the
middle of the frame for the action's duration. Most videos hold one long action, some several short ones, as in
ActivityNet. The videos are encoded with PyAV (H.264 where the FFmpeg build has it, else MPEG-4 Part 2), and
`annotations.csv` lists the segments (video,start,end,label in seconds), so the whole chain - features,
annotations, training, prediction - runs offline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from visionzoo.data.cache import cache_dir
from visionzoo.errors import VisionZooError
from visionzoo.files import building_dir, write_csv

logger = logging.getLogger(__name__)

ANNOTATIONS = "annotations.csv"
VIDEOS_DIR = "videos"
CLASSES = ("waving flag", "bouncing ball", "spinning wheel", "juggling")
_COLOURS = np.array([[230, 60, 40], [40, 200, 60], [50, 90, 240], [240, 210, 30]], dtype=np.float32)
_FPS = (12.0, 15.0, 24.0, 25.0, 30.0)
# The features `--data video-demo` is made of: what `visionzoo features` would write with these options.
# Random resnet50 weights (no download): their features keep the frames' colours and textures apart.
DEMO_FEATURES = {"backbone": "resnet50", "img_size": 48, "snippet_frames": 8, "layer": "pre_logits", "init_seed": 0}


def _segments(rng: np.random.Generator, duration: float) -> np.ndarray:
    """[K, 2] seconds: one action covering most of the video in half of them, else 2-3 shorter ones."""
    count = 1 if rng.random() < 0.5 else int(rng.integers(2, 4))
    covered = rng.uniform(0.5, 0.85) if count == 1 else rng.uniform(0.3, 0.7)
    lengths = rng.dirichlet(np.full(count, 2.0)) * covered
    gaps = rng.dirichlet(np.ones(count + 1)) * (1.0 - covered)
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return np.round(np.stack([starts, starts + lengths], axis=1) * duration, 2)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field (bilinear upsampling of coarse noise), float32 [H, W, 3]."""
    coarse = rng.normal(0.0, 40.0, (6, 6, 3)).astype(np.float32)
    rows = np.linspace(0, 5, height, dtype=np.float32)
    cols = np.linspace(0, 5, width, dtype=np.float32)
    r0, c0 = np.minimum(rows.astype(int), 4), np.minimum(cols.astype(int), 4)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def _sprite(label: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(colour [2r, 2r, 3], alpha [2r, 2r, 1]) of a class's object: a disc with stripes at the class's angle."""
    y, x = np.mgrid[-radius:radius, -radius:radius].astype(np.float32) + 0.5
    angle = math.pi * label / len(CLASSES)
    stripes = np.sin((x * math.cos(angle) + y * math.sin(angle)) * 1.0) > 0
    colour = np.where(stripes[..., None], _COLOURS[label], 255.0 - _COLOURS[label])
    alpha = (x**2 + y**2 <= radius**2).astype(np.float32)[..., None]
    return colour, alpha


def _frames(rng: np.random.Generator, count: int, fps: float, segments: np.ndarray, label: int,
            size: tuple[int, int]) -> Iterator[np.ndarray]:  # fmt: skip
    width, height = size
    base = rng.uniform(60, 190, 3).astype(np.float32)
    scenes = [_texture(rng, 2 * height, 2 * width) for _ in range(2)]
    cut = rng.uniform(0.2, 0.8) * count / fps if rng.random() < 0.5 else math.inf  # a scene cut, not an action
    velocity = rng.uniform(-0.4, 0.4, 2) * fps / 25.0
    colour, alpha = _sprite(label, radius=int(0.3 * height))
    side = colour.shape[0]
    for i in range(count):
        t = i / fps
        scene = scenes[int(t >= cut)]
        dy, dx = (np.abs((velocity * i) % (2 * np.array([height, width]))) // 2).astype(int)
        frame = base + scene[dy : dy + height, dx : dx + width] + 15.0 * math.sin(t / 3.0)
        if any(start <= t < end for start, end in segments):
            cy = int((height - side) / 2 + 0.15 * height * math.sin(2.1 * t))
            cx = int((width - side) / 2 + 0.25 * width * math.sin(1.3 * t))
            window = frame[cy : cy + side, cx : cx + side]
            window[:] = window * (1 - alpha) + colour * alpha
        yield np.clip(frame + rng.normal(0.0, 4.0, frame.shape), 0, 255).astype(np.uint8)


def make_video_demo(
    out: str | Path,
    videos: int = 40,
    seed: int = 0,
    seconds: tuple[float, float] = (6.0, 40.0),
    size: tuple[int, int] = (96, 72),
) -> Path:
    """Write `videos` synthetic videos into out/videos/ and their segments into out/annotations.csv.

    The folder is built beside `out` and renamed, so it is complete or absent; the same seed gives the same files.
    """
    from visionzoo.data.video import encoder_available, write_video

    out = Path(out)
    if videos < 1 or not 0 < seconds[0] <= seconds[1] or min(size) < 16 or any(v % 2 for v in size):
        raise VisionZooError(
            f"make-video-demo: videos >= 1, 0 < shortest <= longest seconds, even sides >= 16; got {videos}, "
            f"{seconds}, {size}"
        )
    codec = "libx264" if encoder_available("libx264") else "mpeg4"
    with building_dir(out, ANNOTATIONS) as tmp:
        (tmp / VIDEOS_DIR).mkdir()
        rows = []
        for i in range(videos):
            rng = np.random.default_rng((seed, i))
            fps = float(rng.choice(_FPS))
            duration = round(float(rng.uniform(*seconds)), 2)
            segments, label = _segments(rng, duration), int(rng.integers(len(CLASSES)))
            name = f"demo_{i:03d}"
            count = int(round(duration * fps))
            write_video(tmp / VIDEOS_DIR / f"{name}.mp4", _frames(rng, count, fps, segments, label, size), fps, codec)
            rows += [[name, f"{start:.2f}", f"{end:.2f}", CLASSES[label]] for start, end in segments]
        write_csv(tmp / ANNOTATIONS, ["video", "start", "end", "label"], rows)
    return out


def video_demo_dir(temporal_scale: int = 100) -> Path:
    """`--data video-demo`: the demo videos' features (DEMO_FEATURES, T = temporal_scale) with their annotations,
    in the cache folder. Running a backbone is inference, not data: `export.feature_extractor.build_video_demo`
    makes them, and the CLI asks it to before a recipe runs on `video-demo`."""
    return cache_dir() / f"video-demo-{temporal_scale}"


def video_demo_videos() -> Path:
    """The generated videos the demo features are made of, written on first use."""
    videos = cache_dir() / "video-demo-videos"
    if not (videos / ANNOTATIONS).is_file():
        make_video_demo(videos)
    return videos
