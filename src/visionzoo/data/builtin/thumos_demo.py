"""Synthetic THUMOS14-layout data (`--data thumos-demo`): long videos, many short actions, 20 classes.

Like THUMOS14 (whose BMN setting it mimics: one snippet per 5 frames at 30 fps, trained on the validation
videos, tested on the test videos), each video is minutes of mostly background holding many short instances
of its one action class. The snippet features are made as `anet_demo`'s (a class signal with ramped edges
inside the instances, boundary signatures, distractor bursts, correlated noise), one row per snippet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionzoo.data.activitynet import write_video_info
from visionzoo.data.builtin.anet_demo import demo_features, demo_patterns
from visionzoo.data.cache import cache_dir
from visionzoo.data.feature_folder import FEATURES_JSON, write_feature_description
from visionzoo.data.thumos14 import write_class_files
from visionzoo.errors import VisionZooError
from visionzoo.files import building_dir, write_npy

THUMOS_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot",
    "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault",
    "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)  # fmt: skip
FPS, SNIPPET_FRAMES = 30.0, 5
DURATION_S = (40.0, 150.0)  # uniform
ACTION_S = (1.0, 12.0)  # log-uniform instance lengths
SECONDS_PER_ACTION = 12.0  # one instance per ~12 s of video on average


def _instances(rng: np.random.Generator, duration: float) -> np.ndarray:
    """[K, 2] seconds, 0.1 s precision (as the THUMOS14 files), disjoint, in time order."""
    count = max(1, int(rng.poisson(duration / SECONDS_PER_ACTION)))
    lengths = np.exp(rng.uniform(*np.log(ACTION_S), count))
    lengths *= min(1.0, 0.6 * duration / lengths.sum())  # at most 60 % of the video is action
    gaps = rng.dirichlet(np.ones(count + 1)) * (duration - lengths.sum())
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    bounds = np.round(np.stack([starts, starts + lengths], axis=1), 1)
    bounds[:, 1] = np.maximum(bounds[:, 1], bounds[:, 0] + 0.1)
    return bounds


def _write_demo(out: Path, videos: int, seed: int, feat_dim: int) -> None:
    (out / "snippets").mkdir(parents=True)
    patterns = demo_patterns(seed, feat_dim, classes=len(THUMOS_CLASSES))
    order = np.random.default_rng((seed, 2**32)).permutation(videos)
    tested = round(videos / 3)
    info_rows, annotations = [], {"validation": {}, "test": {}}
    for i in range(videos):
        rng = np.random.default_rng((seed, i))
        rank = int(np.flatnonzero(order == i)[0])  # classes cycle within each subset: all appear in both
        subset, label = ("test", rank) if rank < tested else ("validation", rank - tested)
        label %= len(THUMOS_CLASSES)
        name = f"video_{subset}_{i + 1:07d}"
        duration = round(float(rng.uniform(*DURATION_S)), 2)
        frames = int(duration * FPS)
        snippets = frames // SNIPPET_FRAMES
        instances = _instances(rng, duration)
        snippet_second = SNIPPET_FRAMES / FPS
        features = demo_features(rng, instances / (snippets * snippet_second), label, patterns, snippets)
        write_npy(out / "snippets" / f"{name}.npy", features.astype(np.float32))
        annotations[subset][name] = (instances, [THUMOS_CLASSES[label]] * len(instances))
        info_rows.append([name, frames, duration, FPS, FPS, subset, snippets * SNIPPET_FRAMES])
    for subset, found in annotations.items():
        write_class_files(out / "annotations", subset, found, list(THUMOS_CLASSES))
    write_video_info(out / "video_info_new.csv", info_rows)
    synthetic = {"backbone": "synthetic (visionzoo thumos-demo)", "weights": None, "weights_sha256": None}
    synthetic |= {"layer": None, "img_size": None, "temporal_scale": None, "preprocessing": None}
    write_feature_description(out / FEATURES_JSON, feat_dim, SNIPPET_FRAMES, **synthetic)


def make_thumos_demo(out: str | Path, videos: int = 60, seed: int = 0, feat_dim: int = 2048) -> Path:
    """Write the synthetic dataset into `out` (built beside it, then renamed); 2:1 validation/test videos."""
    out = Path(out)
    if videos < 2 or feat_dim < 1:
        raise VisionZooError(f"make_thumos_demo: needs videos >= 2 and feat_dim >= 1, got {videos}, {feat_dim}")
    with building_dir(out, "video_info_new.csv") as tmp:
        _write_demo(tmp, videos, seed, feat_dim)
    return out


def thumos_demo_dir(videos: int = 60, seed: int = 0, feat_dim: int = 2048, make: bool = True) -> Path:
    """The demo dataset in the cache folder, made on first use (what `--data thumos-demo` reads)."""
    path = cache_dir() / f"thumos-demo-{videos}-{seed}-{feat_dim}"
    if make and not (path / "video_info_new.csv").exists():
        make_thumos_demo(path, videos=videos, seed=seed, feat_dim=feat_dim)
    return path
