"""Recipes: one module per seed document, each defining `RECIPES`, a list of Recipe values."""

from __future__ import annotations

import importlib

from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import (
    ClassificationRecipe,
    ProposalRecipe,
    Recipe,
    VideoClassifierRecipe,
    WindowedProposalRecipe,
)

_MODULES = (
    "bmn_anet",
    "bmn_own",
    "bmn_thumos14",
    "cspdarknet53_cifar10",
    "ghostnet_imagenet",
    "resnet50_bam_imagenet",
    "video_classifier",
)


def _all() -> dict[str, Recipe]:
    found: dict[str, Recipe] = {}
    for module in _MODULES:
        for recipe in importlib.import_module(f"visionzoo.recipes.{module}").RECIPES:
            found[recipe.name] = recipe
    return found


def list_recipes() -> list[Recipe]:
    return sorted(_all().values(), key=lambda r: r.name)


def get_recipe(name: str) -> Recipe:
    recipes = _all()
    if name not in recipes:
        raise VisionZooError(f"unknown recipe {name!r}; available: {', '.join(sorted(recipes))}")
    return recipes[name]


__all__ = [
    "ClassificationRecipe",
    "ProposalRecipe",
    "Recipe",
    "VideoClassifierRecipe",
    "WindowedProposalRecipe",
    "get_recipe",
    "list_recipes",
]
