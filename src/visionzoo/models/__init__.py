"""Models: one file per architecture, all registered by name with the same timm-style API."""

from visionzoo.models import bmn, cspdarknet, ghostnet, resnet_bam, video_mlp  # noqa: F401  (registers their models)
from visionzoo.models.registry import ModelCfg, create_model, is_model, list_models, model_cfg, register_model
from visionzoo.models.weights import load_checkpoint

__all__ = ["ModelCfg", "create_model", "is_model", "list_models", "load_checkpoint", "model_cfg", "register_model"]
