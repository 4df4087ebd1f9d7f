"""Video features: a backbone of the zoo run over the snippets of a user's videos, into a feature folder.

A snippet's feature is the backbone's pooled pre-logit vector (`forward_features` + `forward_head(pre_logits=True)`)
or its logits (`--layer logits`, as TSN's fc-action scores) of the snippet's centre frame, prepared exactly as the
model's evaluation prepares an image (its model card's preprocessing). The L snippet vectors are rescaled to T
rows by BSN's `poolData` (`data.activitynet.pool_snippets`) and written into a feature folder
(`data.feature_folder`). Videos are decoded in loader workers (`data.video_snippets`), their frames gathered into
backbone batches across videos. This is inference (a network under autocast, a progress bar), so it lives beside
prediction; `data/` keeps the decoding, the sampling and the rescale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from visionzoo.data.feature_folder import FeatureFolder, FeatureSpec
from visionzoo.data.transforms import normalize
from visionzoo.data.video_snippets import VideoSnippets, in_shard
from visionzoo.engine.precision import autocast, resolve_amp
from visionzoo.engine.progress import EpochProgress
from visionzoo.errors import VisionZooError
from visionzoo.files import file_sha256
from visionzoo.models import create_model, model_cfg
from visionzoo.models.registry import eval_preprocessing

logger = logging.getLogger(__name__)

LAYERS = ("pre_logits", "logits")


@dataclass(frozen=True)
class ExtractionSettings:
    """What a feature is (the fields that end up in features.json) and how the extraction runs: built once by
    the command (`features`, or `predict` from a checkpoint's features.json) and read by everything below it."""

    backbone: str
    pretrained: Path | None = None  # the backbone's weights; None: random, drawn from init_seed
    layer: str = "pre_logits"
    img_size: int | None = None  # None: the backbone's own
    snippet_frames: int = 16
    temporal_scale: int = 100
    init_seed: int = 0
    amp: str = "auto"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 32  # frames per backbone forward
    workers: int = 0  # decoding processes
    decode_threads: int = 0  # FFmpeg threads per decoder (0: FFmpeg picks)
    keep_snippets: bool = False
    strict: bool = False  # stop at the first unreadable video
    shard: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise VisionZooError(f"--layer {self.layer}: expected one of {', '.join(LAYERS)}")


class SnippetFeaturizer:
    """A zoo classifier in eval mode turning uint8 frames [B, S, S, 3] into float32 features [B, D]."""

    def __init__(self, model: nn.Module, preprocessing: dict[str, Any], settings: ExtractionSettings) -> None:
        self.settings, self.device = settings, settings.device
        self.precision = resolve_amp(settings.amp, self.device)
        self.model = model.eval().to(self.device)
        self.preprocessing, self.layer = preprocessing, settings.layer
        self.img_size = int(preprocessing["img_size"])
        self.feat_dim = self(np.zeros((1, self.img_size, self.img_size, 3), np.uint8)).shape[1]

    @classmethod
    def random(cls, settings: ExtractionSettings) -> SnippetFeaturizer:
        """A registered model with random weights drawn from `init_seed` (the global RNG untouched), prepared as
        its registered configuration says (the built-in video-demo's features)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.init_seed)
            model = create_model(settings.backbone)
        return cls(model, eval_preprocessing(model_cfg(settings.backbone), settings.img_size), settings)

    def spec(self) -> FeatureSpec:
        """The features.json of this backbone's features of its snippets rescaled to T rows."""
        pretrained = self.settings.pretrained
        return FeatureSpec(
            backbone=self.settings.backbone,
            weights=str(pretrained) if pretrained is not None else None,
            weights_sha256=file_sha256(Path(pretrained)) if pretrained is not None else None,
            init_seed=None if pretrained is not None else self.settings.init_seed,
            layer=self.layer,
            img_size=self.img_size,
            snippet_frames=self.settings.snippet_frames,
            temporal_scale=self.settings.temporal_scale,
            feat_dim=self.feat_dim,
            preprocessing=dict(self.preprocessing),
            amp=self.precision.resolved,
        )

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2)
        x = normalize(images, self.preprocessing["mean"], self.preprocessing["std"])
        with torch.inference_mode(), autocast(self.precision.resolved, self.device):
            out = self.model.forward_head(self.model.forward_features(x), pre_logits=self.layer == "pre_logits")
        return out.float().cpu().numpy()


def load_featurizer(settings: ExtractionSettings) -> SnippetFeaturizer:
    """The backbone (a recipe or registered classifier) with its weights file, or random ones from `init_seed`.

    Its preprocessing is the model card's (`export.model_card.resolve_card`): a run's own image size, crop and
    normalisation when `--pretrained` comes from a training run."""
    from visionzoo.export.model_card import resolve_card

    pretrained = settings.pretrained
    if pretrained is not None and not Path(pretrained).is_file():
        raise VisionZooError(f"--pretrained {pretrained}: no such weights file")
    card = resolve_card(settings.backbone, pretrained, settings.img_size)
    if card.task != "classification":
        raise VisionZooError(f"--backbone {settings.backbone}: not an image classifier (see visionzoo models)")
    with torch.random.fork_rng(devices=[]):  # random weights: drawn from init_seed, the global RNG untouched
        torch.manual_seed(settings.init_seed)
        model = card.build_model(pretrained=pretrained)
    return SnippetFeaturizer(model, card.preprocessing, settings)


@dataclass
class ExtractionReport:
    extracted: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    other_shards: int = 0
    frames: int = 0
    seconds: float = 0.0


class _Batches:
    """Frames of several videos gathered into backbone batches; a video is written once all its frames are done."""

    def __init__(self, featurizer: SnippetFeaturizer, batch_size: int) -> None:
        self.featurizer, self.batch_size = featurizer, batch_size
        self.waiting: list[tuple[int, np.ndarray]] = []
        self.features: dict[int, list[np.ndarray]] = {}

    def add(self, index: int, frames: np.ndarray) -> None:
        if len(frames):
            self.waiting.append((index, frames))
        if sum(len(f) for _, f in self.waiting) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        frames = np.concatenate([f for _, f in self.waiting])
        out = np.concatenate(
            [self.featurizer(frames[i : i + self.batch_size]) for i in range(0, len(frames), self.batch_size)]
        )
        offset = 0
        for index, part in self.waiting:
            self.features.setdefault(index, []).append(out[offset : offset + len(part)])
            offset += len(part)
        self.waiting = []

    def pending(self, index: int) -> bool:
        return any(i == index for i, _ in self.waiting)

    def take(self, index: int) -> np.ndarray:
        return np.concatenate(self.features.pop(index))

    def drop(self, index: int) -> None:
        self.waiting = [(i, f) for i, f in self.waiting if i != index]
        self.features.pop(index, None)


def extract_features(
    videos: list[tuple[str, Path]], folder: FeatureFolder, featurizer: SnippetFeaturizer
) -> ExtractionReport:
    """Extract this shard's unfinished videos into `folder`, then assemble its video_info_new.csv."""
    settings = featurizer.settings
    batch_size, keep_snippets, shard = settings.batch_size, settings.keep_snippets, settings.shard
    report = ExtractionReport()
    mine = [(name, path) for name, path in videos if in_shard(name, shard)]
    report.other_shards = len(videos) - len(mine)
    folder.claim()
    folder.remove_leftovers()
    todo = []
    for name, path in mine:
        (report.already_done if folder.finished(name, keep_snippets) else todo).append((name, path))
    if report.already_done:
        logger.info("%d of %d videos already extracted in %s", len(report.already_done), len(mine), folder.root)
    chunks = VideoSnippets(todo, folder.spec.snippet_frames, featurizer.preprocessing, batch_size,
                           settings.decode_threads)  # fmt: skip
    loader = DataLoader(chunks, batch_size=None, num_workers=settings.workers, in_order=False)
    batches, ended, start = _Batches(featurizer, batch_size), {}, time.monotonic()
    bar = EpochProgress(len(todo), "features", enabled=bool(todo))

    def finish(index: int) -> None:
        name, path = todo[index]
        meta = ended.pop(index)
        folder.write(name, path, batches.take(index), meta, keep_snippets)
        report.extracted.append(name)
        report.frames += meta.frames
        elapsed = time.monotonic() - start
        bar.update(1, frames_per_s=report.frames / max(elapsed, 1e-9))

    for index, frames, end in loader:
        if isinstance(end, str):
            batches.drop(index)
            if settings.strict:
                raise VisionZooError(end)
            logger.warning("%s; skipped", end)
            report.failed.append(todo[index][0])
            bar.update(1)
            continue
        batches.add(index, frames)
        if end is not None:
            ended[index] = end
        for done in [i for i in ended if not batches.pending(i)]:
            finish(done)
    batches.flush()
    for done in list(ended):
        finish(done)
    bar.close()
    report.seconds = time.monotonic() - start
    folder.merge()
    return report


def build_video_demo(temporal_scale: int, feat_dim: int) -> Path:
    """The built-in `video-demo` features (generated videos through a random-weight backbone, `DEMO_FEATURES`)
    with their annotations, made once in the cache, built beside their folder and renamed."""
    from visionzoo.data.activitynet import VIDEO_ANNO, VIDEO_INFO
    from visionzoo.data.builtin.video_demo import ANNOTATIONS, DEMO_FEATURES, video_demo_dir, video_demo_videos
    from visionzoo.data.own_annotations import convert_annotations
    from visionzoo.data.video_snippets import list_videos
    from visionzoo.files import building_dir

    out = video_demo_dir(temporal_scale)
    if (out / VIDEO_ANNO).is_file():
        return out
    videos = video_demo_videos()
    settings = ExtractionSettings(**DEMO_FEATURES, temporal_scale=temporal_scale, amp="off", strict=True)
    featurizer = SnippetFeaturizer.random(settings)
    if featurizer.feat_dim != feat_dim:
        raise VisionZooError(
            f"--feat-dim {feat_dim}: the built-in video features are {featurizer.feat_dim}-d ({settings.backbone} "
            f"{settings.layer}); train with --feat-dim {featurizer.feat_dim}"
        )
    with building_dir(out, VIDEO_INFO) as tmp:
        report = extract_features(list_videos([videos]), FeatureFolder(tmp, featurizer.spec()), featurizer)
        logger.info("video-demo: %d videos extracted into %s", len(report.extracted), out)
        convert_annotations(videos / ANNOTATIONS, tmp)
    return out
