"""Model registry in the timm style: `@register_model(cfg)` on a factory function, `create_model(name, ...)`.

Every model is built and loaded the same way: the factory only constructs the module, `create_model` attaches
the model's configuration and loads `pretrained` through `weights.load_checkpoint`, the one loading function
that every command also uses, with the model's own key mapping for other projects' checkpoints.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from visionzoo.errors import VisionZooError
from visionzoo.models.weights import CheckpointFilter, StateDict, load_checkpoint, read_state_dict

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipProtocol:
    """How the published features of a video backbone cut a video into clips and prepare each clip.

    Features only match the ones detectors were trained on when extracted the same way: a caller resamples the
    video to `fps` (None keeps the video's own rate), takes `num_frames`-frame clips every `stride` frames,
    resizes every frame to `resize` (H, W), centre crops `crop` x `crop`, scales to [0, 1] and normalises with
    `mean`/`std`. The clip goes in as [B, C, T, H, W]; `modality` "flow" clips are TV-L1 flow (x, y) already in
    [-1, 1] (`visionzoo.data.optical_flow.tvl1_flow`, computed on the resized frames).
    """

    num_frames: int
    stride: int
    fps: float | None
    resize: tuple[int, int]
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    modality: str = "rgb"  # rgb | flow
    source: str = ""  # the published features this protocol reproduces


@dataclass(frozen=True)
class ModelCfg:
    """What a model takes and how its weights map, beside the weights themselves (timm's `pretrained_cfg`).

    Read by the model card of a bare model name (its input and preprocessing) and by `load_checkpoint` (the
    key mapping of the reference's checkpoints).
    """

    task: str = "classification"  # classification | proposals | video_classification | video_features
    input_size: tuple[int, ...] = (3, 224, 224)  # one item: [3, H, W] image, [feat_dim, T] features, [C, T, H, W] clip
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    first_conv: str = ""
    classifier: str = ""
    checkpoint_filter: CheckpointFilter | None = None  # maps another project's key layout onto ours
    protocol: ClipProtocol | None = None  # video feature backbones: how the published features were extracted
    layout_name: LayoutName | None = None  # names the published files of this architecture from their keys


LayoutName = Callable[[StateDict], "str | None"]


def eval_preprocessing(cfg: ModelCfg, img_size: int | None = None) -> dict[str, Any]:
    """How evaluation prepares an image for a model of this configuration (the model card's `preprocessing`
    keys): resize the shorter side to img_size / crop_pct, centre crop img_size, normalise."""
    return {
        "resize": "eval_crop",
        "img_size": img_size or cfg.input_size[-1],
        "crop_pct": cfg.crop_pct,
        "interpolation": cfg.interpolation,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
    }


Factory = Callable[..., nn.Module]
_MODELS: dict[str, tuple[Factory, ModelCfg]] = {}


def register_model(cfg: ModelCfg) -> Callable[[Factory], Factory]:
    """Register a factory (which takes the model's kwargs) under its function name, with its configuration."""

    def register(fn: Factory) -> Factory:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        _MODELS[fn.__name__] = (fn, cfg)
        return fn

    return register


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS


def model_cfg(name: str) -> ModelCfg:
    if name not in _MODELS:
        raise VisionZooError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name][1]


def weights_layout(state: StateDict) -> str | None:
    """The published layout the keys say this state dict is in ("piergiaj I3D RGB (400 classes)"), asking every
    architecture's `layout_name`; None when none recognises it."""
    for name_layout in dict.fromkeys(cfg.layout_name for _, cfg in _MODELS.values() if cfg.layout_name):
        found = name_layout(state)
        if found:
            return found
    return None


def describe_weights(path: str | Path) -> str:
    """What a weights file holds, in words, for the log line of `--pretrained` and for mismatch errors."""
    state = read_state_dict(path)
    first = next(iter(state), "-")
    return weights_layout(state) or f"a layout no zoo model names ({len(state)} tensors, first {first})"


def create_model(name: str, pretrained: str | Path | None = None, **kwargs) -> nn.Module:
    """Build a registered model; `pretrained` is a local weights file (safetensors or a PyTorch checkpoint).

    A classifier trained for another number of classes is replaced by a fresh one (said in one line), as
    timm does; every other mismatch is an error naming the file, and what it holds where its layout is known.
    """
    cfg = model_cfg(name)
    model = _MODELS[name][0](**kwargs)
    model.pretrained_cfg = cfg
    if pretrained:
        try:
            load_checkpoint(model, pretrained, adapt_classifier=True)
        except VisionZooError as err:
            try:
                found = weights_layout(read_state_dict(pretrained))
            except VisionZooError:
                found = None
            if found is None:
                raise
            raise VisionZooError(f"{err}; the file holds {found} weights, not {name}'s") from None
    return model
