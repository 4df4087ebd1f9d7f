"""Every recipe field as a CLI flag (`--batch-size 32`, `--no-channels-last`) and as a YAML key, each value
checked once, here, against the field's type (a `Literal` type lists the allowed text) and `LIMITS` /
`CHOICES`, before any work starts.

A new field needs nothing more than its dataclass line, unless not every value of its type makes sense:
then one entry in `LIMITS` (numbers, lists of numbers) or `CHOICES` (text whose values depend on the registry).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visionzoo.data.builtin import BUILTIN, resolve_data
from visionzoo.errors import VisionZooError
from visionzoo.files import is_regular_file, read_yaml
from visionzoo.models import list_models
from visionzoo.recipes.base import Recipe, VideoClassifierRecipe

logger = logging.getLogger(__name__)

_FIXED = {"name", "task", "description", "seed_doc", "reference", "seed_amp"}  # identity, not settings
_ALIASES = {"batch_size": ["-b"], "workers": ["-j"], "data_format": ["--dataset"], "compile": ["--torchcompile"]}
_RENAMED = {"dataset": "data_format"}  # old YAML key -> field


@dataclass(frozen=True)
class Limit:
    """What a number field, or each item of a list field, accepts beyond its type (None: no bound)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False  # `low` itself excluded
    open_high: bool = False
    length: int | None = None  # a list: exactly this many items
    increasing: bool = False  # a list: items that never decrease


LIMITS: dict[str, Limit | Callable[[type[Recipe]], Limit]] = {
    "epochs": Limit(low=1),
    "batch_size": Limit(low=1),
    "eval_batch_size": Limit(low=1),
    "lr": Limit(low=0, open_low=True),
    "lr_base_batch": Limit(low=0),
    "momentum": Limit(low=0, high=1),
    "weight_decay": Limit(low=0),
    "warmup_epochs": Limit(low=0),
    "warmup_lr": Limit(low=0),
    "min_lr": Limit(low=0),
    "cooldown_epochs": Limit(low=0),
    "decay_epochs": Limit(low=1),
    "decay_milestones": Limit(low=1),
    "decay_rate": Limit(low=0, open_low=True),
    "clip_grad": Limit(low=0, open_low=True),
    "ema_decay": Limit(low=0, high=1, open_high=True),
    "workers": Limit(low=0, high=256),  # loader processes: more would only exhaust the machine
    "seed": Limit(low=0, high=2**32 - 1),  # numpy's seeds are non-negative
    "eval_every": Limit(low=1),
    "save_every_steps": Limit(low=0),
    # a video classifier may take its class count from the data's labels (0)
    "num_classes": lambda recipe_type: Limit(low=0 if issubclass(recipe_type, VideoClassifierRecipe) else 1),
    "img_size": Limit(low=1),
    "crop_pct": Limit(low=0, open_low=True, high=1),
    "mean": Limit(length=3),
    "std": Limit(low=0, open_low=True, length=3),
    "crop_padding": Limit(low=0),
    "rrc_scale": Limit(low=0, open_low=True, high=1, length=2, increasing=True),
    "rrc_ratio": Limit(low=0, open_low=True, length=2, increasing=True),
    "hflip": Limit(low=0, high=1),
    "color_jitter": Limit(low=0),
    "label_smoothing": Limit(low=0, high=1, open_high=True),
    "drop_rate": Limit(low=0, high=1, open_high=True),
    "max_image_pixels": Limit(low=1),
    "temporal_scale": Limit(low=1),
    "feat_dim": Limit(low=1),
    "prop_boundary_ratio": Limit(low=0, open_low=True),
    "num_sample": Limit(low=1),
    "num_sample_perbin": Limit(low=1),
    "soft_nms_alpha": Limit(low=0, open_low=True),
    "soft_nms_low_threshold": Limit(low=0, high=1),
    "soft_nms_high_threshold": Limit(low=0, high=1),
    "max_proposals": Limit(low=1),
    "class_top_k": Limit(low=1),
    "max_detections": Limit(low=1),
    "snippet_frames": Limit(low=0),
    "window_overlap_train": Limit(low=0, high=1, open_high=True),
    "window_overlap_eval": Limit(low=0, high=1, open_high=True),
    "window_ioa": Limit(low=0, open_low=True, high=1),
    "merge_soft_nms_alpha": Limit(low=0, open_low=True),
    "merge_max_proposals": Limit(low=1),
    "feature_dropout": Limit(low=0, high=1, open_high=True),
    "temporal_jitter": Limit(low=0),
}

# The values a text field takes: a list, or a function of the recipe's type (its data formats) giving one.
# Text fields whose allowed values depend on what is registered or on the kind of recipe (fixed sets are
# Literal types in recipes/base.py).
CHOICES: dict[str, Sequence[str] | Callable[[type[Recipe]], Sequence[str]]] = {
    "data_format": lambda recipe_type: recipe_type.DATA_FORMATS,
    "model": lambda recipe_type: list_models(),
}


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
    try:
        return key, yaml.safe_load(value)
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"{key}: not a YAML value ({' '.join(str(err).split())[:120]})") from None


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
        elif origin is typing.Literal:  # checked with the other values, so that the error line is the same
            group.add_argument(*flags, metavar="{" + ",".join(typing.get_args(inner)) + "}", **common)
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
    return recipe.replace(
        **{k: check_value(type(recipe), k, v, f"{source}: {k}") for k, v in values.items() if k in fields}
    )


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping, or one error line naming it."""
    if not path.is_file():
        raise VisionZooError(f"{what} {path}: no such file")
    values = read_yaml(path, what) or {}
    if not isinstance(values, dict):
        raise VisionZooError(f"{what} {path}: expected a mapping of recipe fields")
    return values


def apply_yaml(recipe: Recipe, path: Path) -> Recipe:
    return merge_values(recipe, read_yaml_mapping(path, "--config"), f"--config {path}")


def apply_arguments(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    changes = {
        name: check_value(type(recipe), name, getattr(args, name), _flag(name))
        for name in settable_fields(type(recipe))
        if hasattr(args, name)
    }
    if "model_kwargs" in changes:
        changes["model_kwargs"] = recipe.model_kwargs | dict(changes["model_kwargs"])
    return recipe.replace(**changes)


def check_inputs(recipe: Recipe) -> None:
    """The files a recipe names exist: `--data` (a folder, or a built-in dataset) and `--pretrained`."""
    if recipe.data and recipe.data not in BUILTIN and not resolve_data(recipe.data, recipe.data_format).is_dir():
        raise VisionZooError(f"--data {recipe.data}: no such directory")
    if recipe.pretrained and not is_regular_file(recipe.pretrained):
        raise VisionZooError(f"--pretrained {recipe.pretrained}: no such file")


def check_value(recipe_type: type[Recipe], name: str, value: Any, where: str) -> Any:
    """`value` of field `name` as its type wants it (YAML text is read as the flag would read it), inside the
    field's `LIMITS` and `CHOICES`; else one error naming `where` (the flag, or the YAML file and key)."""
    value = _typed(settable_fields(recipe_type)[name], value, where)
    limit, choices = LIMITS.get(name), CHOICES.get(name)
    limit = limit(recipe_type) if callable(limit) else limit
    if limit is not None and value is not None:
        _check_limit(limit, value, where)
    if choices is not None:
        allowed = choices(recipe_type) if callable(choices) else choices
        if allowed and value not in allowed:
            raise VisionZooError(f"{where}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _typed(hint: Any, value: Any, where: str) -> Any:
    inner, optional = _unwrap_optional(hint)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise VisionZooError(f"{where}: a value is required")
    origin = typing.get_origin(inner)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise VisionZooError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(inner)
        return [_typed(item, v, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise VisionZooError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise VisionZooError(f"{where}: expected true or false, got {value!r}")
    if inner is int:
        return _number(int, value, where, "an integer")
    if inner is float:
        number = _number(float, value, where, "a number")
        if not math.isfinite(number):
            raise VisionZooError(f"{where}: must be a finite number, got {number}")
        return number
    if inner is str and not isinstance(value, str):
        raise VisionZooError(f"{where}: expected text, got {value!r}")
    if origin is typing.Literal and value not in typing.get_args(inner):
        raise VisionZooError(f"{where}: expected one of {', '.join(typing.get_args(inner))}, got {value!r}")
    return value


def _number(kind: type, value: Any, where: str, what: str) -> Any:
    """An int or float field's value: a number of that kind (an int is a float), or text that reads as one."""
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool) and (kind is float or isinstance(value, int)):
        return kind(value)
    raise VisionZooError(f"{where}: expected {what}, got {value!r}")


def _check_limit(limit: Limit, value: Any, where: str) -> None:
    items = value if isinstance(value, list) else [value]
    if limit.length is not None and len(items) != limit.length:
        raise VisionZooError(f"{where}: expected {limit.length} values, got {len(items)}")
    if limit.increasing and items != sorted(items):
        raise VisionZooError(f"{where}: must not decrease, got {value}")
    for item in items:
        if limit.low is not None and (item <= limit.low if limit.open_low else item < limit.low):
            raise VisionZooError(f"{where}: must be {'>' if limit.open_low else '>='} {_plain(limit.low)}, got {item}")
        if limit.high is not None and (item >= limit.high if limit.open_high else item > limit.high):
            raise VisionZooError(
                f"{where}: must be {'<' if limit.open_high else '<='} {_plain(limit.high)}, got {item}"
            )


def _plain(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
