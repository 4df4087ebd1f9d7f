"""Models: one file per architecture, all registered by name with the same timm-style API."""

from visionzoo.models import bmn, cspdarknet, ghostnet, resnet_bam  # noqa: F401  (registers their models)
from visionzoo.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
