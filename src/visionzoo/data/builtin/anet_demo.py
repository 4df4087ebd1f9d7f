"""Synthetic ActivityNet-layout features (`--data demo`): real statistics, learnable actions, no download.

Durations, frame rates, actions per video and segment lengths follow the real annotation files; the features
carry a class signal with ramped edges inside the actions, start/end signatures at the boundaries, distractor
bursts outside them and correlated noise, so proposals can be learned.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from visionzoo.data.activitynet import FEATURE_DIR, VIDEO_ANNO, VIDEO_INFO, format_csv_rows, write_video_info
from visionzoo.data.cache import cache_dir
from visionzoo.errors import VisionZooError
from visionzoo.files import building_dir, write_bytes, write_text

DEMO_CLASSES = (
    "Long jump", "Playing guitarra", "Making a sandwich", "Washing dishes", "Skateboarding", "Bathing dog",
    "Playing violin", "Shoveling snow", "Tai chi", "Rock climbing", "Mowing the lawn", "Ironing clothes",
    "Walking the dog", "Surfing", "Painting", "Javelin throw", "Brushing teeth", "Kayaking", "Baking cookies",
    "Juggling balls",
)  # fmt: skip
# Quantiles of duration_second over the 19,228 videos of the real anet_anno_action.json.
_DURATION_Q = (0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1)
_DURATION_S = (1.6, 7.8, 10.8, 17.9, 29.0, 49.9, 69.3, 90.1, 113.6, 136.1, 160.2, 185.1, 210.8, 224.3, 233.7,
               236.6, 293.3, 975.1)  # fmt: skip
# Videos with 1..8 actions in the real training split, and the frame rates of the real info CSV.
_ACTION_COUNTS = np.array([7274, 1266, 462, 257, 150, 96, 49, 34], dtype=np.float64)
_FPS = ((30.0, 0.70), (25.0, 0.18), (24.0, 0.08), (15.0, 0.04))
# feature_frame - duration_frame // 16 * 16 in the real JSON: 0 for 66%, +16 for 28%, -16 for 6%.
_FEATURE_FRAME_SHIFT = ((0, 0.66), (16, 0.28), (-16, 0.06))
_NAME_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)


def _pick(rng: np.random.Generator, table: tuple[tuple[float, float], ...]) -> float:
    values, weights = zip(*table, strict=True)
    return values[rng.choice(len(values), p=np.asarray(weights) / sum(weights))]


def _demo_segments(rng: np.random.Generator, duration: float) -> np.ndarray:
    """[K, 2] seconds: one long action in most videos, several short ones in the rest, as in ActivityNet."""
    count = 1 + rng.choice(len(_ACTION_COUNTS), p=_ACTION_COUNTS / _ACTION_COUNTS.sum())
    if count == 1:
        length = float(np.clip(rng.beta(1.6, 0.55), 0.01, 1.0))  # median ~0.8 of the video, as in the real data
        start = rng.uniform(0.0, 1.0 - length)
        bounds = np.array([[start, start + length]])
    else:
        covered = rng.uniform(0.15, 0.85)
        lengths = rng.dirichlet(np.full(count, 0.8)) * covered
        gaps = rng.dirichlet(np.ones(count + 1)) * (1.0 - covered)
        starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        bounds = np.stack([starts, starts + lengths], axis=1)
    seconds = np.round(bounds * duration, 3)
    seconds[:, 1] = np.minimum(np.maximum(seconds[:, 1], seconds[:, 0] + 0.05), duration)
    return seconds


def _soft_coverage(start: float, end: float, temporal_scale: int) -> np.ndarray:
    """Fraction of each bin [t/T, (t+1)/T] inside [start, end], smoothed so the edges ramp over ~2 bins."""
    edges = np.arange(temporal_scale + 1) / temporal_scale
    cover = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, None) * temporal_scale
    return np.convolve(np.pad(cover, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")


def demo_features(
    rng: np.random.Generator, bounds: np.ndarray, label: int, patterns: dict[str, np.ndarray], temporal_scale: int
) -> np.ndarray:
    """[T, D] logit-like scores: a class signal inside the actions, boundary bumps, distractor bursts, noise."""
    prototypes, feat_dim = patterns["classes"], patterns["bias"].shape[0]
    centres = (np.arange(temporal_scale) + 0.5) / temporal_scale
    features = patterns["bias"] + rng.normal(0.0, 0.3, feat_dim)  # dataset prior + per-video scene offset
    noise = rng.normal(0.0, 0.6, (temporal_scale + 2, feat_dim))
    features = features + (noise[:-2] + noise[1:-1] + noise[2:]) / math.sqrt(3)  # temporally correlated
    inside = np.zeros(temporal_scale)
    for start, end in bounds:
        cover = _soft_coverage(start, end, temporal_scale)
        inside = np.maximum(inside, cover)
        features += rng.uniform(0.6, 1.4) * cover[:, None] * prototypes[label]
        for point, signature in ((start, patterns["start"]), (end, patterns["end"])):
            bump = np.exp(-0.5 * ((centres - point) * temporal_scale / 0.8) ** 2)
            features += bump[:, None] * signature
    for _ in range(rng.poisson(1.0)):  # bursts of another class where there is no action, without boundaries
        length = int(rng.integers(2, 9))
        begin = int(rng.integers(0, max(1, temporal_scale - length)))
        if inside[max(0, begin - 2) : begin + length + 2].max() > 0.0:
            continue
        other = (label + 1 + int(rng.integers(len(prototypes) - 1))) % len(prototypes)
        burst = _soft_coverage(begin / temporal_scale, (begin + length) / temporal_scale, temporal_scale)
        features += rng.uniform(0.4, 0.9) * burst[:, None] * prototypes[other]
    return features


def demo_patterns(seed: int, feat_dim: int, classes: int = len(DEMO_CLASSES)) -> dict[str, np.ndarray]:
    """Per class a prototype (large on the feature dimensions it owns, like TSN class scores), a dataset bias,
    and the start and end signatures."""
    rng = np.random.default_rng((seed, 2**31))
    owned = (np.arange(feat_dim)[None, :] % classes) == np.arange(classes)[:, None]  # like TSN class scores
    return {
        "bias": rng.normal(-1.0, 0.8, feat_dim),
        "classes": 2.0 * owned + rng.normal(0.0, 0.5, (classes, feat_dim)),
        "start": rng.normal(0.0, 0.8, feat_dim),
        "end": rng.normal(0.0, 0.8, feat_dim),
    }


def _demo_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "v_" + _NAME_ALPHABET[rng.integers(0, len(_NAME_ALPHABET), 11)].tobytes().decode()
        if name not in taken:
            taken.add(name)
            return name


def _write_demo(out: Path, videos: int, seed: int, temporal_scale: int, feat_dim: int) -> None:
    (out / FEATURE_DIR).mkdir(parents=True)
    header = (",".join(f"f{i}" for i in range(feat_dim)) + "\n").encode()
    patterns = demo_patterns(seed, feat_dim)
    validation = set(np.random.default_rng((seed, 2**32)).permutation(videos)[: round(videos / 4)].tolist())
    database, info_rows, taken = {}, [], set()
    for i in range(videos):
        rng = np.random.default_rng((seed, i))
        name = _demo_name(rng, taken)
        duration = round(float(np.interp(rng.random(), _DURATION_Q, _DURATION_S)), 3)
        fps = _pick(rng, _FPS)
        duration_frame = max(int(round(duration * fps)), 16)
        feature_frame = max(duration_frame // 16 * 16 + int(_pick(rng, _FEATURE_FRAME_SHIFT)), 16)
        feature_second = feature_frame / duration_frame * duration
        segments = _demo_segments(rng, duration)
        label = int(rng.integers(len(DEMO_CLASSES)))  # one activity per video, as in ActivityNet
        bounds = np.clip(segments / feature_second, 0.0, 1.0)
        features = demo_features(rng, bounds, label, patterns, temporal_scale)
        write_bytes(out / FEATURE_DIR / f"{name}.csv", header + format_csv_rows(features))
        database[name] = {
            "duration_second": duration,
            "duration_frame": duration_frame,
            "annotations": [{"segment": seg.tolist(), "label": DEMO_CLASSES[label]} for seg in segments],
            "feature_frame": feature_frame,
        }
        subset = "validation" if i in validation else "training"
        info_rows.append([name, duration_frame, duration, fps, duration_frame / duration, subset, feature_frame])
    write_text(out / VIDEO_ANNO, json.dumps(database))
    write_video_info(out / VIDEO_INFO, sorted(info_rows))


def make_anet_demo(
    out: str | Path, videos: int = 600, seed: int = 0, temporal_scale: int = 100, feat_dim: int = 400
) -> Path:
    """Write a synthetic dataset in exactly the BSN/BMN layout into `out` (built beside it, then renamed).

    Durations, frame rates, actions per video and segment lengths follow the real annotation files; the
    features carry a class signal with ramped edges inside the actions, start/end signatures at the
    boundaries, distractor bursts outside them and correlated noise, so proposals can be learned. Training
    and validation are 3:1. The same seed gives the same files.
    """
    out = Path(out)
    if videos < 1 or temporal_scale < 1 or feat_dim < 1:
        raise VisionZooError(f"make_anet_demo: videos, temporal_scale and feat_dim must be >= 1, got "
                             f"{videos}, {temporal_scale}, {feat_dim}")  # fmt: skip
    with building_dir(out, VIDEO_INFO) as tmp:
        _write_demo(tmp, videos, seed, temporal_scale, feat_dim)
    return out


def demo_data_dir(
    videos: int = 600, seed: int = 0, temporal_scale: int = 100, feat_dim: int = 400, make: bool = True
) -> Path:
    """The demo dataset in the cache folder, made on first use (what `--data demo` reads; `make=False`: only
    where it would be)."""
    shape = "" if (temporal_scale, feat_dim) == (100, 400) else f"-{temporal_scale}x{feat_dim}"
    path = cache_dir() / f"anet-demo-{videos}-{seed}{shape}"
    if make and not (path / VIDEO_INFO).exists():
        make_anet_demo(path, videos=videos, seed=seed, temporal_scale=temporal_scale, feat_dim=feat_dim)
    return path
