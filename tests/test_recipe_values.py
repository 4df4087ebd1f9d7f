"""The value checks of recipes/overrides.py: the seeds' own values pass, flags and YAML are read alike."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from visionzoo.errors import VisionZooError
from visionzoo.recipes import list_recipes
from visionzoo.recipes.overrides import (
    LIMITS,
    add_recipe_arguments,
    apply_arguments,
    apply_yaml,
    check_value,
    settable_fields,
)


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: r.name)
def test_every_seed_value_passes_its_own_checks(recipe) -> None:
    for name in settable_fields(type(recipe)):
        assert check_value(type(recipe), name, getattr(recipe, name), name) == getattr(recipe, name)


def test_every_limit_names_a_field() -> None:
    fields = {name for recipe in list_recipes() for name in settable_fields(type(recipe))}
    assert set(LIMITS) <= fields


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [("1e-3", "lr", 0.001), ("12", "epochs", 12), ("0.2 0.9", "rrc_scale", [0.2, 0.9]), ("none", "clip_grad", None)],
)
def test_a_yaml_text_value_reads_as_its_flag(tmp_path: Path, text: str, field: str, expected: object) -> None:
    recipe = next(r for r in list_recipes() if r.name == "ghostnet_imagenet")
    parser = argparse.ArgumentParser()
    add_recipe_arguments(parser, recipe)
    from_flag = apply_arguments(recipe, parser.parse_args([f"--{field.replace('_', '-')}", *text.split()]))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({field: text.split() if " " in text else text}))
    from_yaml = apply_yaml(recipe, config)
    assert getattr(from_flag, field) == getattr(from_yaml, field) == expected


def test_a_run_config_with_a_bad_value_names_the_file_and_key(tmp_path: Path) -> None:
    from visionzoo.export.model_card import resolve_card

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "cspdarknet53", "img_size": -32}))
    with pytest.raises(VisionZooError, match=r"config\.yaml: img_size: must be >= 1, got -32"):
        resolve_card("cspdarknet53_cifar10", tmp_path / "best.safetensors")
