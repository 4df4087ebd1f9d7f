"""Every recipe field as a CLI flag (`--batch-size 32`, `--no-channels-last`) and as a YAML key."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import Recipe

logger = logging.getLogger(__name__)

_FIXED = {"name", "task", "description", "seed_doc", "reference", "seed_amp"}  # identity, not settings
_ALIASES = {"batch_size": ["-b"], "workers": ["-j"], "data_format": ["--dataset"], "compile": ["--torchcompile"]}
_RENAMED = {"dataset": "data_format"}  # old YAML key -> field


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


def merge_values(recipe: Recipe, values: dict[str, Any], source: str, strict: bool = True) -> Recipe:
    """`recipe` with `values` of a YAML file applied: the one set of rules for `--config` files and for the
    config.yaml of a run (which model cards read).

    Renamed fields are read under their new name. With `strict` (a user's config) an unknown key is an error
    and a renamed one gets a deprecation line; without it (a run's config.yaml, written by this or an older
    version, also records world size, global batch, ...) both are read quietly. Identity fields (name,
    reference, ...) are never taken from a file.
    """
    values = dict(values)
    for old, new in _RENAMED.items():
        if old in values and strict:
            logger.warning("%s: '%s' is now called '%s' (read as such; rename it)", source, old, new)
        if old in values:
            value = values.pop(old)
            values.setdefault(new, value)
    fields = settable_fields(type(recipe))
    unknown = sorted(set(values) - set(fields) - _FIXED)
    if unknown and strict:
        raise VisionZooError(f"{source}: unknown field(s) {', '.join(unknown)} for recipe {recipe.name}")
    return recipe.replace(**{k: v for k, v in values.items() if k in fields})


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping, or one error line naming it."""
    if not path.is_file():
        raise VisionZooError(f"{what} {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise VisionZooError(f"{what} {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise VisionZooError(f"{what} {path}: expected a mapping of recipe fields")
    return values


def apply_yaml(recipe: Recipe, path: Path) -> Recipe:
    return merge_values(recipe, read_yaml_mapping(path, "--config"), f"--config {path}")


def apply_arguments(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    changes = {name: getattr(args, name) for name in settable_fields(type(recipe)) if hasattr(args, name)}
    if "model_kwargs" in changes:
        changes["model_kwargs"] = recipe.model_kwargs | dict(changes["model_kwargs"])
    return recipe.replace(**changes)
