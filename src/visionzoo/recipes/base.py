"""The Recipe type: a named, typed training configuration. Data only, no code paths.

Defaults come from a seed document; a YAML file and `--field value` flags override them, in that order.
Task-specific fields live in the subclasses, so every field of a recipe is one flat CLI flag.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

# The values a text field allows: part of its type, read by the flag and YAML checks (recipes.overrides) and by
# every module that acts on the value, so no module checks a choice again.
Amp = Literal["auto", "off", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]
Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["constant", "step", "multistep", "cosine"]
Interpolation = Literal["nearest", "bilinear", "bicubic"]
TrainCrop = Literal["rrc", "pad", "none"]  # rrc: RandomResizedCrop | pad: padded random crop (CIFAR) | none
InferenceRuntime = Literal["auto", "torch", "compiled", "onnxruntime", "openvino"]  # export/runtime.py
Fusion = Literal["product", "sqrt"]  # how a proposal's score and its video's class score combine (docs/bmn.md)


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a Literal type, in order (for argparse's `choices` and error lines)."""
    return typing.get_args(literal)


@dataclass
class Recipe:
    DATA_FORMATS: ClassVar[tuple[str, ...]] = ()  # the on-disk formats this kind of recipe reads

    name: str = ""
    task: str = ""
    description: str = ""
    seed_doc: str = ""
    # What the seed documents report for this recipe (shown by `visionzoo recipes`).
    reference: dict[str, Any] = field(default_factory=dict)
    seed_amp: Amp = "off"  # the precision the seed trained in; `--amp auto` follows its fp16 on CUDA

    model: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    data_format: str = ""  # the on-disk format the task reads: cifar10 | imagefolder | activitynet
    data: str = ""  # a folder in that format, or a built-in dataset's name (visionzoo.data.builtin)

    epochs: int = 1
    batch_size: int = 32  # per device (process); the global batch is batch_size x world size
    eval_batch_size: int | None = None

    optimizer: Optimizer = "sgd"
    lr: float = 0.1  # learning rate at a global batch of lr_base_batch
    lr_base_batch: int = 0  # 0: use lr as given; N: scale lr linearly by global_batch / N
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    wd_skip_norm_bias: bool = True  # no weight decay on biases and normalisation parameters
    sched: Schedule = "constant"
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    cooldown_epochs: int = 0
    decay_epochs: int = 30  # step schedule period
    decay_milestones: list[int] = field(default_factory=list)  # multistep schedule
    decay_rate: float = 0.1
    clip_grad: float | None = None
    ema_decay: float = 0.0  # 0 disables the EMA of weights

    amp: Amp = "auto"  # engine/precision.py: auto fits the machine
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (timm's --torchcompile)
    device: Device = "auto"
    workers: int = 2
    seed: int = 0
    sync_bn: bool = False
    eval_every: int = 1  # epochs
    save_every_steps: int = 0  # 0: checkpoints at epoch ends only
    main_metric: str = "top1"  # the evaluation metric that picks best.safetensors (higher is better)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ClassificationRecipe(Recipe):
    DATA_FORMATS: ClassVar[tuple[str, ...]] = ("cifar10", "imagefolder")

    task: str = "classification"
    num_classes: int = 1000
    img_size: int = 224
    crop_pct: float = 0.875  # evaluation: resize to img_size / crop_pct, centre crop img_size
    interpolation: Interpolation = "bilinear"
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    train_crop: TrainCrop = "rrc"
    crop_padding: int = 4
    rrc_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    rrc_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: float = 0.5
    color_jitter: float = 0.0
    label_smoothing: float = 0.0
    drop_rate: float = 0.0
    strict_data: bool = False  # fail on a corrupt image instead of skipping it
    # larger images are skipped like corrupt ones, before decoding: below Pillow's decompression-bomb warning
    # (89 megapixels), above the photos of common cameras (data/transforms.MAX_IMAGE_PIXELS)
    max_image_pixels: int = 40_000_000


@dataclass
class ProposalRecipe(Recipe):
    DATA_FORMATS: ClassVar[tuple[str, ...]] = ("activitynet",)

    task: str = "proposals"
    main_metric: str = "AUC"
    temporal_scale: int = 100
    feat_dim: int = 400
    prop_boundary_ratio: float = 0.5
    num_sample: int = 32
    num_sample_perbin: int = 3
    video_info: str = "video_info_new.csv"
    video_anno: str = "anet_anno_action.json"
    feature_dir: str = "csv_mean_100"
    feature_dropout: float = 0.0  # training items: feature values zeroed with this probability (FeatureAugment)
    temporal_jitter: float = 0.0  # training items: seen through a random window of 1/(1+j)..(1+j) of the span
    soft_nms_alpha: float = 0.4
    soft_nms_low_threshold: float = 0.5
    soft_nms_high_threshold: float = 0.9
    max_proposals: int = 100
    # Detection (docs/bmn.md): proposals x the top classes of a video-level classification JSON, or "auto"
    # (the built-in video classifier, trained on the same data once and reused); "" reports proposals only.
    classes: str = ""
    class_top_k: int = 2
    fusion: Fusion = "product"
    max_detections: int = 100  # per video
    detection_tiou: str = "0.5:0.95:10"  # np.linspace(LO, HI, N)


@dataclass
class WindowedProposalRecipe(ProposalRecipe):
    """BMN on long videos: windows of `temporal_scale` snippets over features of any length (data/thumos14.py)."""

    DATA_FORMATS: ClassVar[tuple[str, ...]] = ("thumos14",)
    task: str = "windowed_proposals"
    data_format: str = "thumos14"
    video_anno: str = "annotations"  # a folder of <Class>_val.txt / _test.txt files, or a database JSON
    feature_dir: str = "snippets"
    snippet_frames: int = 0  # frames per snippet; 0: from the data's features.json
    train_subset: str = "validation"  # THUMOS14 trains on its validation videos and tests on its test videos
    eval_subset: str = "test"
    window_overlap_train: float = 0.25
    window_overlap_eval: float = 0.5
    window_ioa: float = 0.9  # an instance belongs to a window when more than this fraction of it is inside
    merge_soft_nms_alpha: float = 0.3  # Soft-NMS over a video's merged windows: exp(-iou^2 / alpha), any overlap
    merge_max_proposals: int = 200


@dataclass
class VideoClassifierRecipe(Recipe):
    """A video-level classifier on snippet features (the labels of the detection data's own annotations)."""

    DATA_FORMATS: ClassVar[tuple[str, ...]] = ("activitynet", "thumos14")
    task: str = "video_classification"
    main_metric: str = "top1"
    num_classes: int = 0  # 0: as many as the data's labels
    temporal_scale: int = 100  # snippets the model sees; longer videos are average-pooled to it
    feat_dim: int = 400
    video_info: str = "video_info_new.csv"
    video_anno: str = "anet_anno_action.json"
    feature_dir: str = "csv_mean_100"
    snippet_frames: int = 0  # thumos14 data: as WindowedProposalRecipe
    train_subset: str = "train"
    eval_subset: str = "validation"
    drop_rate: float = 0.5
    label_smoothing: float = 0.1
