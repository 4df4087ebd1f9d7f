"""Video features: a backbone of the zoo run over the snippets of a user's videos, into a feature folder.

Two kinds of backbone, one loop (`extract_features`): an image classifier sees one frame per snippet
(`SnippetFeaturizer`); a clip model (I3D, R(2+1)D, VideoMAE: `ModelCfg.protocol`) sees one clip per snippet cut
as its published features were (`ClipFeaturizer`, clips from `data.video_clips`), and two-stream I3D (`i3d`)
concatenates its RGB and flow streams' features (RGB first, as the THUMOS14 features detectors use).

A feature is the backbone's pooled pre-logit vector (`forward_features` + `forward_head(pre_logits=True)`) or its
logits (`--layer logits`, as TSN's fc-action scores); an image classifier's is of the snippet's centre frame,
prepared exactly as the model's evaluation prepares an image (its model card's preprocessing). The L snippet
vectors are rescaled to T rows by BSN's `poolData` (`data.activitynet.pool_snippets`) in the BSN layout, or kept
as they are in the snippets layout, and written into a feature folder (`data.feature_folder`). Videos are
decoded in loader workers (`data.video_snippets`, `data.video_clips`), their frames or clips gathered into
backbone batches across videos. This is inference (a network under autocast, a progress bar), so it lives beside
prediction; `data/` keeps the decoding, the sampling and the rescale.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, IterableDataset

from visionzoo.data.feature_folder import LAYOUTS, FeatureFolder, FeatureSpec
from visionzoo.data.optical_flow import require_optflow
from visionzoo.data.transforms import normalize
from visionzoo.data.video_clips import VideoClips, scaled_protocol
from visionzoo.data.video_snippets import VideoSnippets, in_shard
from visionzoo.engine.precision import compute_dtype, resolve_amp
from visionzoo.engine.progress import EpochProgress
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard
from visionzoo.export.runtime import Runtime, module_hash, resolve_runtime, runtime_of
from visionzoo.files import file_sha256
from visionzoo.models import create_model, model_cfg
from visionzoo.models.registry import ClipProtocol, describe_weights, eval_preprocessing, is_model

logger = logging.getLogger(__name__)

LAYERS = ("pre_logits", "logits")
IMAGE_SNIPPET_FRAMES = 16  # ActivityNet's TSN snippets
TWO_STREAM = {"i3d": ("i3d_rgb", "i3d_flow")}  # a backbone name that is several registered streams
VIDEOMAE_PREFIX = "videomae:"


@dataclass(frozen=True)
class ExtractionSettings:
    """What a feature is (the fields that end up in features.json) and how the extraction runs: built once by
    the command (`features`, or `predict` from a checkpoint's features.json) and read by everything below it."""

    backbone: str
    pretrained: Path | None = None  # the backbone's weights (two-stream: the RGB stream's); None: random (init_seed)
    pretrained_flow: Path | None = None  # two-stream I3D: the flow stream's weights
    layer: str = "pre_logits"
    img_size: int | None = None  # None: the backbone's own (clip models: the protocol's crop, resize scaled alike)
    snippet_frames: int | None = None  # None: 16 for an image classifier, a clip model's protocol stride
    temporal_scale: int = 100
    init_seed: int = 0
    amp: str = "auto"
    runtime: str = "auto"  # what runs the backbone (export.runtime): torch, compiled, onnxruntime, openvino, auto
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    layout: str = "bsn"  # data.feature_folder.LAYOUTS
    batch_size: int = 32  # frames (clip models: clips) per backbone forward
    workers: int = 0  # decoding processes
    decode_threads: int = 0  # FFmpeg threads per decoder (0: FFmpeg picks)
    keep_snippets: bool = False
    strict: bool = False  # stop at the first unreadable video
    shard: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise VisionZooError(f"--layer {self.layer}: expected one of {', '.join(LAYERS)}")
        if self.layout not in LAYOUTS:
            raise VisionZooError(f"--layout {self.layout}: expected one of {', '.join(LAYOUTS)}")
        if self.pretrained_flow is not None and self.backbone not in TWO_STREAM:
            raise VisionZooError(f"--pretrained-flow: only for a two-stream backbone ({', '.join(TWO_STREAM)})")

    def feature_spec(self, network: Runtime, **measured: Any) -> FeatureSpec:
        """features.json: what these settings say, with what the featurizer knows (sizes, preprocessing) and what
        ran the backbone (runtime and precision)."""
        runtime, amp = network.describe().split()
        return FeatureSpec(backbone=self.backbone, **self.weights_fields(), layer=self.layer,
                           amp="off" if amp == "fp32" else amp, runtime=runtime, temporal_scale=self.temporal_scale,
                           layout=self.layout, **measured)  # fmt: skip

    def weights_fields(self) -> dict[str, Any]:
        """features.json's weights: each file as given and its hash (a folder: the hash of its files)."""
        fields: dict[str, Any] = {"weights": None, "weights_sha256": None, "init_seed": self.init_seed}
        if self.backbone.startswith(VIDEOMAE_PREFIX):  # the folder is the weights
            folder = Path(self.backbone.removeprefix(VIDEOMAE_PREFIX))
            return fields | {"weights": str(folder), "weights_sha256": weights_sha256(folder), "init_seed": None}
        if self.pretrained is not None:
            fields |= {"weights": str(self.pretrained), "weights_sha256": weights_sha256(self.pretrained)}
        if self.pretrained_flow is not None:
            fields |= {"weights_flow": str(self.pretrained_flow)}
            fields |= {"weights_flow_sha256": weights_sha256(self.pretrained_flow)}
        if self.pretrained is not None and (self.backbone not in TWO_STREAM or self.pretrained_flow is not None):
            fields["init_seed"] = None
        return fields


def weights_sha256(path: Path) -> str:
    """A weights file's sha256, or a model folder's (VideoMAE): the sha256 of its files' names and hashes."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(f"{p.relative_to(path)}:{file_sha256(p)}\n" for p in files).encode()).hexdigest()


class SnippetFeaturizer:
    """A zoo classifier in eval mode turning uint8 frames [B, S, S, 3] into float32 features [B, D]."""

    def __init__(self, model: nn.Module, preprocessing: dict[str, Any], settings: ExtractionSettings,
                 name: str) -> None:  # fmt: skip
        self.settings = settings
        self.model = model.eval().to(settings.device)
        self.preprocessing = preprocessing
        self.img_size = int(preprocessing["img_size"])
        self.snippet_frames = settings.snippet_frames or IMAGE_SNIPPET_FRAMES
        shape = [3, self.img_size, self.img_size]
        self.network = backbone_runtime(BackboneFeatures([self.model], [3], settings.layer), name, shape,
                                        dict(preprocessing), settings)  # fmt: skip
        self.feat_dim = self(np.zeros((1, self.img_size, self.img_size, 3), np.uint8)).shape[1]

    @classmethod
    def random(cls, settings: ExtractionSettings) -> SnippetFeaturizer:
        """A registered model with random weights drawn from `init_seed` (the global RNG untouched), prepared as
        its registered configuration says (the built-in video-demo's features)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.init_seed)
            model = create_model(settings.backbone)
        preprocessing = eval_preprocessing(model_cfg(settings.backbone), settings.img_size)
        return cls(model, preprocessing, settings, settings.backbone)

    def spec(self) -> FeatureSpec:
        """The features.json of this backbone's features of its snippets (rescaled to T rows in the BSN layout)."""
        return self.settings.feature_spec(
            self.network,
            img_size=self.img_size,
            snippet_frames=self.snippet_frames,
            feat_dim=self.feat_dim,
            preprocessing=dict(self.preprocessing),
        )

    def dataset(self, videos: list[tuple[str, Path]]) -> IterableDataset:
        """The videos' snippets' centre frames, prepared as the model's evaluation prepares an image."""
        s = self.settings
        return VideoSnippets(videos, self.snippet_frames, self.preprocessing, s.batch_size, s.decode_threads)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(frames).permute(0, 3, 1, 2)
        x = normalize(images, self.preprocessing["mean"], self.preprocessing["std"])
        # channels-last strides, as decoded: PyTorch's convolutions run faster on them than on an NCHW copy (the
        # converted runtimes make their own)
        return self.network(x.numpy())[0]


class ClipFeaturizer:
    """One or more clip models in eval mode (the streams of one feature) turning clips [B, C, T, S, S] (the
    streams' channels concatenated, already normalised) into float32 features [B, sum of the streams' D]."""

    def __init__(self, streams: list[tuple[nn.Module, ClipProtocol]], settings: ExtractionSettings) -> None:
        self.settings = settings
        self.models = [model.eval().to(settings.device) for model, _ in streams]
        self.protocols = tuple(protocol for _, protocol in streams)
        if any(p.modality == "flow" for p in self.protocols):  # before any video: else every one fails alike
            try:
                require_optflow()
            except VisionZooError as err:
                raise VisionZooError(f"--backbone {settings.backbone}: {err}; or use --backbone i3d_rgb") from None
        p = self.protocols[0]
        widths = [len(q.mean) for q in self.protocols]
        name = "videomae" if settings.backbone.startswith(VIDEOMAE_PREFIX) else settings.backbone
        module = BackboneFeatures(self.models, widths, settings.layer)
        self.network = backbone_runtime(module, name, [sum(widths), p.num_frames, p.crop, p.crop], {}, settings)
        self.feat_dim = self(np.zeros((1, sum(widths), p.num_frames, p.crop, p.crop), np.float32)).shape[1]

    def spec(self) -> FeatureSpec:
        """features.json: the backbone, its weights and the protocol of every stream."""
        p = self.protocols[0]
        protocol = {q.modality: asdict(q) for q in self.protocols}
        return self.settings.feature_spec(
            self.network,
            img_size=p.crop,
            snippet_frames=p.stride,
            feat_dim=self.feat_dim,
            preprocessing={},
            frame=f"a {p.num_frames}-frame clip centred on each snippet of {p.stride} frames at "
            + (f"{p.fps:g} fps" if p.fps else "the video's own rate"),
            protocol=protocol,
        )

    def dataset(self, videos: list[tuple[str, Path]]) -> IterableDataset:
        s = self.settings
        return VideoClips(videos, self.protocols, s.batch_size, s.decode_threads)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return self.network(np.ascontiguousarray(clips, dtype=np.float32))[0]


Featurizer = SnippetFeaturizer | ClipFeaturizer


class BackboneFeatures(nn.Module):
    """What a feature is, as one module: each stream's pooled pre-logits (or logits) of its share of the input's
    channels, concatenated. One module, so that a runtime converts and runs all streams as one graph."""

    def __init__(self, streams: list[nn.Module], widths: list[int], layer: str) -> None:
        super().__init__()
        self.streams, self.widths, self.pre_logits = nn.ModuleList(streams), widths, layer == "pre_logits"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.streams) == 1:
            return self.streams[0].forward_head(self.streams[0].forward_features(x), pre_logits=self.pre_logits)
        outs = []
        for model, part in zip(self.streams, x.split(self.widths, dim=1), strict=True):
            outs.append(model.forward_head(model.forward_features(part), pre_logits=self.pre_logits))
        return torch.cat(outs, dim=1)


def backbone_runtime(module: BackboneFeatures, name: str, input_shape: list[int], preprocessing: dict[str, Any],
                     settings: ExtractionSettings) -> Runtime:  # fmt: skip
    """The backbone in the settings' runtime at the precision `--amp` resolves to (auto: `export.runtime`'s rule;
    a conversion is cached by a hash of the weights), with what it picked logged in one line."""
    precision = resolve_amp(settings.amp, settings.device)
    dtype = compute_dtype(precision.resolved)
    card = ModelCard(model=name, task="features", model_kwargs={}, input_shape=input_shape, preprocessing=preprocessing)
    runtime, why = resolve_runtime(card, settings.runtime, dtype, settings.device)
    if runtime != "torch" and settings.device.type != "cpu":
        raise VisionZooError(f"--runtime {runtime} runs on the CPU, not --device {settings.device.type}")
    network = runtime_of(card, lambda: module_hash(module, card), lambda: module, runtime, dtype)
    logger.info("backbone %s: %s (%s; %s)", name, network.describe(), why, precision.describe())
    return network


def is_clip_backbone(backbone: str) -> bool:
    """A two-stream name, a VideoMAE folder or a registered model with a clip protocol."""
    if backbone in TWO_STREAM or backbone.startswith(VIDEOMAE_PREFIX):
        return True
    return is_model(backbone) and model_cfg(backbone).protocol is not None


def _clip_stream(name: str, pretrained: Path | None, settings: ExtractionSettings) -> tuple[nn.Module, ClipProtocol]:
    """A registered clip model with its weights (the file's layout named, or a mismatch in one line naming both),
    and its protocol at the asked crop and stride."""
    if name.startswith(VIDEOMAE_PREFIX):
        folder = Path(name.removeprefix(VIDEOMAE_PREFIX))
        model = create_model("videomae", model_dir=folder)
        size, frames = model.image_size, model.num_frames  # the folder's config decides the clip it takes
        protocol = replace(model_cfg("videomae").protocol, num_frames=frames, resize=(size, size), crop=size)
    else:
        if pretrained is not None:
            logger.info("--pretrained %s: %s", pretrained, describe_weights(pretrained))
        with torch.random.fork_rng(devices=[]):  # random weights: drawn from init_seed, the global RNG untouched
            torch.manual_seed(settings.init_seed)
            model = create_model(name, pretrained=pretrained)
        protocol = model_cfg(name).protocol
    if settings.img_size is not None:
        protocol = scaled_protocol(protocol, settings.img_size)
    if settings.snippet_frames is not None:
        protocol = replace(protocol, stride=settings.snippet_frames)
    return model, protocol


def load_featurizer(settings: ExtractionSettings) -> Featurizer:
    """The backbone with its weights file(s), or random weights from `init_seed`: a clip model (or two-stream
    I3D) as a `ClipFeaturizer`, anything else as an image classifier's `SnippetFeaturizer`."""
    for given in (settings.pretrained, settings.pretrained_flow):
        if given is not None and not Path(given).is_file():
            raise VisionZooError(f"--pretrained {given}: no such weights file")
    if settings.backbone == "videomae":
        raise VisionZooError("--backbone videomae:DIR: give the folder of a transformers VideoMAE model")
    if settings.backbone.startswith(VIDEOMAE_PREFIX):
        if settings.pretrained is not None:
            raise VisionZooError("--pretrained: a VideoMAE folder holds its weights (--backbone videomae:DIR)")
        return ClipFeaturizer([_clip_stream(settings.backbone, None, settings)], settings)
    if settings.backbone in TWO_STREAM:
        rgb, flow = TWO_STREAM[settings.backbone]
        if (settings.pretrained is None) != (settings.pretrained_flow is None):
            raise VisionZooError(f"--backbone {settings.backbone}: give both --pretrained RGB and --pretrained-flow "
                                 "FLOW, or neither (random weights)")  # fmt: skip
        streams = [_clip_stream(rgb, settings.pretrained, settings)]
        return ClipFeaturizer(streams + [_clip_stream(flow, settings.pretrained_flow, settings)], settings)
    if is_clip_backbone(settings.backbone):
        return ClipFeaturizer([_clip_stream(settings.backbone, settings.pretrained, settings)], settings)
    return load_image_featurizer(settings)


def load_image_featurizer(settings: ExtractionSettings) -> SnippetFeaturizer:
    """An image backbone (a recipe or registered classifier) with its weights file, or random ones from `init_seed`.

    Its preprocessing is the model card's (`export.model_card.resolve_card`): a run's own image size, crop and
    normalisation when `--pretrained` comes from a training run."""
    from visionzoo.export.model_card import resolve_card

    pretrained = settings.pretrained
    card = resolve_card(settings.backbone, pretrained, settings.img_size)
    if card.task != "classification":
        raise VisionZooError(f"--backbone {settings.backbone}: not an image classifier (see visionzoo models)")
    if pretrained is not None:
        logger.info("--pretrained %s: %s", pretrained, describe_weights(pretrained))
    with torch.random.fork_rng(devices=[]):  # random weights: drawn from init_seed, the global RNG untouched
        torch.manual_seed(settings.init_seed)
        model = card.build_model(pretrained=pretrained)
    return SnippetFeaturizer(model, card.preprocessing, settings, card.model)


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

    def __init__(self, featurizer: Featurizer, batch_size: int) -> None:
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


def extract_features(videos: list[tuple[str, Path]], folder: FeatureFolder, featurizer: Featurizer) -> ExtractionReport:
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
    loader = DataLoader(featurizer.dataset(todo), batch_size=None, num_workers=settings.workers, in_order=False)
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
