"""Per-snippet features of raw videos from any classifier of the zoo, in the BSN/BMN layout `train bmn_*` reads.

A snippet's feature is the backbone's pooled pre-logit vector (`forward_features` + `forward_head(pre_logits=True)`)
or its logits (`--layer logits`, as TSN's fc-action scores) of the snippet's centre frame, prepared exactly as the
model's evaluation prepares an image (its preprocessing through `data.transforms.input_geometry` and
`normalize`; `export.snippet_features.load_featurizer` takes it from the backbone's model card). The L snippet
vectors are rescaled to T rows by BSN's `poolData`
(`data.activitynet.pool_snippets`) and written into a feature folder (`data.feature_folder`). Videos are decoded
in loader workers (`data.video`), their frames gathered into backbone batches across videos.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from visionzoo.data.feature_folder import FeatureFolder, FeatureSpec
from visionzoo.data.files import expand_inputs
from visionzoo.data.transforms import input_geometry, normalize
from visionzoo.data.video import SnippetDecoder, VideoMeta, is_video_file
from visionzoo.engine.precision import autocast, resolve_amp
from visionzoo.engine.progress import EpochProgress
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model, model_cfg
from visionzoo.models.registry import eval_preprocessing

logger = logging.getLogger(__name__)

LAYERS = ("pre_logits", "logits")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------- backbone


class SnippetFeaturizer:
    """A zoo classifier in eval mode turning uint8 frames [B, S, S, 3] into float32 features [B, D]."""

    def __init__(
        self,
        model: nn.Module,
        preprocessing: dict[str, Any],
        backbone: str,
        pretrained: Path | None = None,
        layer: str = "pre_logits",
        amp: str = "auto",
        device: torch.device | None = None,
        init_seed: int = 0,
    ) -> None:
        if layer not in LAYERS:
            raise VisionZooError(f"--layer {layer}: expected one of {', '.join(LAYERS)}")
        self.device = device or torch.device("cpu")
        self.precision = resolve_amp(amp, self.device)
        self.model = model.eval().to(self.device)
        self.preprocessing, self.layer = preprocessing, layer
        self.img_size = int(preprocessing["img_size"])
        self.feat_dim = self(np.zeros((1, self.img_size, self.img_size, 3), np.uint8)).shape[1]
        self.backbone, self.pretrained, self.init_seed = backbone, pretrained, init_seed

    @classmethod
    def random(cls, backbone: str, img_size: int, layer: str, init_seed: int, amp: str = "off") -> SnippetFeaturizer:
        """A registered model with random weights drawn from `init_seed` (the global RNG untouched), prepared as
        its registered configuration says (the built-in video-demo's features)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = create_model(backbone)
        return cls(
            model, eval_preprocessing(model_cfg(backbone), img_size), backbone, None, layer, amp, None, init_seed
        )

    def spec(self, snippet_frames: int, temporal_scale: int) -> FeatureSpec:
        """The features.json of this backbone's features of `snippet_frames`-frame snippets rescaled to T rows."""
        pretrained = self.pretrained
        return FeatureSpec(
            backbone=self.backbone,
            weights=str(pretrained) if pretrained is not None else None,
            weights_sha256=file_sha256(Path(pretrained)) if pretrained is not None else None,
            init_seed=None if pretrained is not None else self.init_seed,
            layer=self.layer,
            img_size=self.img_size,
            snippet_frames=snippet_frames,
            temporal_scale=temporal_scale,
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


# --------------------------------------------------------------------------------------------- video list


def list_videos(inputs: list[Path]) -> list[tuple[str, Path]]:
    """(name, file) of every video given or found in a folder (recursively), sorted by name; a name is a stem."""
    videos: dict[str, Path] = {}
    for path in expand_inputs(inputs, is_video_file, "video files"):
        if path.stem in videos and videos[path.stem].resolve() != path.resolve():
            raise VisionZooError(f"{path}: same name as {videos[path.stem]}; video names (file stems) must be unique")
        videos[path.stem] = path
    return sorted(videos.items())


def parse_shard(text: str | None) -> tuple[int, int]:
    """(K, N) from `--shard K/N` (1 <= K <= N), else torchrun's RANK + 1 / WORLD_SIZE, else (1, 1)."""
    if text is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return int(os.environ.get("RANK", "0")) + 1, world
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise VisionZooError(f"--shard {text}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
    return int(match[1]), int(match[2])


def in_shard(name: str, shard: tuple[int, int]) -> bool:
    """A video's shard depends on its name only, so every process agrees whatever list it was given."""
    return zlib.crc32(name.encode()) % shard[1] == shard[0] - 1


# ------------------------------------------------------------------------------------------- extraction


class _VideoChunks(IterableDataset):
    """Items (video index, frames uint8 [n, S, S, 3], end): end is None mid-video, the VideoMeta at its end, or
    the error line of a video that cannot be read. Loader workers take every `num_workers`-th video."""

    def __init__(self, videos: list[tuple[str, Path]], snippet_frames: int, preprocessing: dict, chunk: int,
                 threads: int) -> None:  # fmt: skip
        self.videos, self.snippet_frames, self.preprocessing = videos, snippet_frames, preprocessing
        self.chunk, self.threads = chunk, threads

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, VideoMeta | str | None]]:
        info = get_worker_info()
        prep, size = self.preprocessing, int(self.preprocessing["img_size"])
        empty = np.zeros((0, size, size, 3), np.uint8)
        for index in range(info.id if info else 0, len(self.videos), info.num_workers if info else 1):
            decoder = SnippetDecoder(
                self.videos[index][1],
                self.snippet_frames,
                lambda w, h: input_geometry(prep, w, h),
                size,
                prep["interpolation"],
                self.threads,
            )
            frames: list[np.ndarray] = []
            try:
                for frame in decoder:
                    frames.append(frame)
                    if len(frames) == self.chunk:
                        yield index, np.stack(frames), None
                        frames = []
            except VisionZooError as err:
                yield index, empty, str(err)
                continue
            yield index, np.stack(frames) if frames else empty, decoder.meta


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
    videos: list[tuple[str, Path]],
    folder: FeatureFolder,
    featurizer: SnippetFeaturizer,
    batch_size: int = 32,
    workers: int = 0,
    keep_snippets: bool = False,
    strict: bool = False,
    shard: tuple[int, int] = (1, 1),
    decode_threads: int = 0,
) -> ExtractionReport:
    """Extract this shard's unfinished videos into `folder`, then assemble its video_info_new.csv."""
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
    chunks = _VideoChunks(todo, folder.spec.snippet_frames, featurizer.preprocessing, batch_size, decode_threads)
    loader = DataLoader(chunks, batch_size=None, num_workers=workers, in_order=False)
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
            if strict:
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
