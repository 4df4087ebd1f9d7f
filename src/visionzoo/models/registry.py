"""Model registry in the timm style: `@register_model` on a factory function, `create_model(name, ...)`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch.nn as nn

from visionzoo.errors import VisionZooError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name; the factory takes `pretrained` and model kwargs."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(name: str, pretrained: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model; `pretrained` is a local weights file (safetensors or a PyTorch checkpoint)."""
    if name not in _MODELS:
        raise VisionZooError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name](pretrained=pretrained, **kwargs)
