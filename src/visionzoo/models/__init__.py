"""Models: one file per architecture, all registered by name with the same timm-style API."""

from visionzoo.models import (  # noqa: F401  (registers their models)
    bmn,
    cspdarknet,
    ghostnet,
    i3d,
    r2plus1d,
    resnet_bam,
    video_mlp,
    videomae,
)
from visionzoo.models.registry import (
    ClipProtocol,
    ModelCfg,
    create_model,
    is_model,
    list_models,
    model_cfg,
    register_model,
)
from visionzoo.models.weights import load_checkpoint

__all__ = [
    "ClipProtocol",
    "ModelCfg",
    "create_model",
    "is_model",
    "list_models",
    "load_checkpoint",
    "model_cfg",
    "register_model",
]
