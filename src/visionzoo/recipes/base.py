"""The Recipe type: a named, typed training configuration. Data only, no code paths.

Defaults come from a seed document; a YAML file and `--field value` flags override them, in that order.
Task-specific fields live in the subclasses, so every field of a recipe is one flat CLI flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recipe:
    name: str = ""
    task: str = ""
    description: str = ""
    seed_doc: str = ""
    # What the seed documents report for this recipe (shown by `visionzoo recipes`).
    reference: dict[str, Any] = field(default_factory=dict)
    seed_amp: str = "off"  # the precision the seed trained in; `--amp auto` follows its fp16 on CUDA

    model: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    data_format: str = ""  # the on-disk format the task reads: cifar10 | imagefolder | activitynet
    data: str = ""  # a folder in that format, or a built-in dataset's name (visionzoo.data.builtin)

    epochs: int = 1
    batch_size: int = 32  # per device (process); the global batch is batch_size x world size
    eval_batch_size: int | None = None

    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.1  # learning rate at a global batch of lr_base_batch
    lr_base_batch: int = 0  # 0: use lr as given; N: scale lr linearly by global_batch / N
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    wd_skip_norm_bias: bool = True  # no weight decay on biases and normalisation parameters
    sched: str = "constant"  # constant | step | multistep | cosine
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    cooldown_epochs: int = 0
    decay_epochs: int = 30  # step schedule period
    decay_milestones: list[int] = field(default_factory=list)  # multistep schedule
    decay_rate: float = 0.1
    clip_grad: float | None = None
    ema_decay: float = 0.0  # 0 disables the EMA of weights

    amp: str = "auto"  # auto | off | bf16 | fp16 (engine/precision.py: auto fits the machine)
    channels_last: bool = False
    device: str = "auto"  # auto | cpu | cuda
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
    task: str = "classification"
    num_classes: int = 1000
    img_size: int = 224
    crop_pct: float = 0.875  # evaluation: resize to img_size / crop_pct, centre crop img_size
    interpolation: str = "bilinear"
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    train_crop: str = "rrc"  # rrc: RandomResizedCrop | pad: padded random crop (CIFAR) | none
    crop_padding: int = 4
    rrc_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    rrc_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: float = 0.5
    color_jitter: float = 0.0
    label_smoothing: float = 0.0
    drop_rate: float = 0.0
    strict_data: bool = False  # fail on a corrupt image instead of skipping it


@dataclass
class ProposalRecipe(Recipe):
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
