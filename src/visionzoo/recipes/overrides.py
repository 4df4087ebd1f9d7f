"""Every recipe field as a CLI flag (`--batch-size 32`, `--no-channels-last`) and as a YAML key."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import Recipe

_FIXED = {"name", "task", "description", "seed_doc", "reference"}  # identity of a recipe, not settings
_ALIASES = {"batch_size": ["-b"], "workers": ["-j"]}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _optional(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _key_values(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key, yaml.safe_load(value)


def settable_fields(recipe_type: type[Recipe]) -> dict[str, Any]:
    hints = typing.get_type_hints(recipe_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(recipe_type) if f.name not in _FIXED}


def add_recipe_arguments(parser: argparse.ArgumentParser, recipe: Recipe) -> None:
    """One flag per settable field of this recipe's type; defaults are left unset so only given flags apply."""
    group = parser.add_argument_group(f"{recipe.name} settings (defaults from the recipe)")
    for name, hint in settable_fields(type(recipe)).items():
        inner, optional = _unwrap_optional(hint)
        flags = [_flag(name), *_ALIASES.get(name, [])]
        default = getattr(recipe, name)
        common = {"dest": name, "default": argparse.SUPPRESS, "help": f"(default: {default})"}
        origin = typing.get_origin(inner)
        if inner is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif origin is list:
            (item,) = typing.get_args(inner)
            group.add_argument(*flags, nargs="+", type=item, metavar=item.__name__.upper(), **common)
        elif origin is dict:
            group.add_argument(*flags, nargs="+", type=_key_values, metavar="KEY=VALUE", **common)
        else:
            convert = _optional(inner) if optional else inner
            group.add_argument(*flags, type=convert, metavar=getattr(inner, "__name__", "VALUE").upper(), **common)


def apply_yaml(recipe: Recipe, path: Path) -> Recipe:
    if not path.is_file():
        raise VisionZooError(f"--config {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise VisionZooError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise VisionZooError(f"--config {path}: expected a mapping of recipe fields")
    fields = settable_fields(type(recipe))
    unknown = sorted(set(values) - set(fields) - _FIXED)
    if unknown:
        raise VisionZooError(f"--config {path}: unknown field(s) {', '.join(unknown)} for recipe {recipe.name}")
    values = {k: v for k, v in values.items() if k in fields}
    return recipe.replace(**values)


def apply_arguments(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    changes = {name: getattr(args, name) for name in settable_fields(type(recipe)) if hasattr(args, name)}
    if "model_kwargs" in changes:
        changes["model_kwargs"] = recipe.model_kwargs | dict(changes["model_kwargs"])
    return recipe.replace(**changes)
