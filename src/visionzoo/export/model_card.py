"""Model cards: everything a deployed model needs besides its weights, resolved once and shipped with it.

A card says which registered model to build (name + kwargs), what one input item looks like, how raw inputs
are preprocessed (the evaluation pipeline of the recipe that trained it), how outputs are post-processed, the
class names and the metrics of the run that made it. Export writes it as `<file>.json` beside the weights and,
for ONNX, also into the model's metadata, so `visionzoo predict --onnx FILE` needs nothing else.

Where the values come from, later sources winning: the recipe's defaults (or a bare model's), the
`config.yaml` of the checkpoint's run directory (what was actually trained, e.g. `--num-classes 10`), a card
already beside the checkpoint (`export --format safetensors` output), and for a bare model name the number of
classes read off the checkpoint's classifier.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch.nn as nn
from pydantic import Field, JsonValue, StringConstraints

from visionzoo.errors import VisionZooError
from visionzoo.files import OpenSchema, Schema, read_json, remove_stale_temporaries, validate
from visionzoo.recipes.base import (
    ClassificationRecipe,
    Interpolation,
    ProposalRecipe,
    Recipe,
    VideoClassifierRecipe,
    WindowedProposalRecipe,
)
from visionzoo.recipes.overrides import merge_values, read_yaml_mapping
from visionzoo.tasks.postprocess import SoftNMSSettings

CARD_FORMAT = "visionzoo-model-card-v1"
ONNX_CARD_KEY = "visionzoo.card"  # metadata_props key of the card JSON in exported ONNX files


# ------------------------------------------------------------------------------------------------- schema
# What a card must hold for a model to be built and fed from it: the keys code reads are typed, others kept.
Size = Annotated[int, Field(ge=1, le=1 << 20)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class ModelKwargs(OpenSchema):
    num_classes: Size | None = None
    feat_dim: Size | None = None
    temporal_scale: Size | None = None
    num_sample: Size | None = None
    num_sample_perbin: Size | None = None
    prop_boundary_ratio: Annotated[float, Field(gt=0, le=10)] | None = None


class Preprocessing(OpenSchema):
    img_size: Size | None = None
    feat_dim: Size | None = None
    temporal_scale: Size | None = None
    snippet_frames: Size | None = None
    crop_pct: Annotated[float, Field(gt=0, le=1)] | None = None
    resize: Literal["whole", "eval_crop"] | None = None
    interpolation: Interpolation | None = None
    mean: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=3, max_length=3)] | None = None
    std: (
        Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)] | None
    ) = None
    window_overlap: Annotated[float, Field(ge=0, lt=1)] | None = None


class CardSchema(Schema):
    """A model card file (`<weights>.json`, or the ONNX file's `visionzoo.card` metadata)."""

    format: Literal["visionzoo-model-card-v1"]  # CARD_FORMAT
    model: Text
    task: Literal["classification", "proposals", "windowed_proposals", "video_classification", "features"]
    model_kwargs: ModelKwargs
    input_shape: Annotated[list[Size], Field(min_length=1, max_length=4)]
    preprocessing: Preprocessing
    postprocessing: dict[str, JsonValue] = {}
    class_names: (
        Annotated[list[Annotated[str, StringConstraints(max_length=512)]], Field(max_length=1 << 20)] | None
    ) = None
    recipe: Text | None = None
    metrics: dict[str, JsonValue] | None = None
    export: dict[str, JsonValue] = {}


@dataclass
class ModelCard:
    model: str
    task: str  # classification | proposals | windowed_proposals | video_classification | features (a backbone)
    model_kwargs: dict[str, Any]  # all of create_model's kwargs: num_classes / temporal_scale, feat_dim, ...
    input_shape: list[int]  # one item: [3, H, W] for images, [feat_dim, T] for BMN features
    preprocessing: dict[str, Any]
    postprocessing: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    recipe: str | None = None
    metrics: dict[str, Any] | None = None
    export: dict[str, Any] = field(default_factory=dict)  # format, exporter, opset, source checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT} | dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ModelCard:
        return cls.of(validate(CardSchema, data, source, "model card"))

    @classmethod
    def of(cls, card: CardSchema) -> ModelCard:
        return cls(**card.model_dump(exclude_unset=True, exclude={"format"}))

    def build_model(self, pretrained: str | Path | None = None, **overrides: Any) -> nn.Module:
        """The registered model in eval mode; `overrides` replace model kwargs (e.g. bm_impl for export)."""
        from visionzoo.models import create_model

        model = create_model(self.model, **(self.model_kwargs | overrides))
        if pretrained is not None:
            from visionzoo.models.weights import load_checkpoint

            load_checkpoint(model, pretrained)
        return model.eval()


def card_path(path: str | Path) -> Path:
    """`model.safetensors` -> `model.safetensors.json`: the card beside a weights or ONNX file."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_card(path: str | Path) -> ModelCard:
    return ModelCard.of(read_json(Path(path), "model card", CardSchema))


def card_from_recipe(recipe: Recipe) -> ModelCard:
    """The card of a recipe's model as evaluation sees it (the eval transform, the task's normalisation)."""
    if isinstance(recipe, ProposalRecipe):
        kwargs = {
            "temporal_scale": recipe.temporal_scale,
            "prop_boundary_ratio": recipe.prop_boundary_ratio,
            "num_sample": recipe.num_sample,
            "num_sample_perbin": recipe.num_sample_perbin,
            "feat_dim": recipe.feat_dim,
        } | recipe.model_kwargs
        preprocessing = {"feature_format": "csv_mean_100", "temporal_scale": kwargs["temporal_scale"]}
        postprocessing = dataclasses.asdict(SoftNMSSettings.of(recipe))
        if isinstance(recipe, WindowedProposalRecipe):  # long videos: windows of T snippets, merged again
            preprocessing |= {"feature_format": "snippets", "snippet_frames": recipe.snippet_frames}
            preprocessing |= {"window_overlap": recipe.window_overlap_eval}
            postprocessing |= {"merge_soft_nms_alpha": recipe.merge_soft_nms_alpha}
            postprocessing |= {"merge_max_proposals": recipe.merge_max_proposals}
        return ModelCard(
            model=recipe.model,
            task=recipe.task,
            model_kwargs=kwargs,
            input_shape=[kwargs["feat_dim"], kwargs["temporal_scale"]],
            preprocessing=preprocessing | {"feat_dim": kwargs["feat_dim"]},
            postprocessing=postprocessing,
            recipe=recipe.name or None,
        )
    if isinstance(recipe, VideoClassifierRecipe):
        kwargs = {"num_classes": recipe.num_classes, "feat_dim": recipe.feat_dim} | recipe.model_kwargs
        return ModelCard(
            model=recipe.model,
            task="video_classification",
            model_kwargs=kwargs,
            input_shape=[recipe.feat_dim, recipe.temporal_scale],
            preprocessing={"feature_format": "snippets", "temporal_scale": recipe.temporal_scale},
            recipe=recipe.name or None,
        )
    if not isinstance(recipe, ClassificationRecipe):
        raise VisionZooError(f"recipe {recipe.name!r}: export knows classification and proposals recipes")
    return ModelCard(
        model=recipe.model,
        task="classification",
        model_kwargs={"num_classes": recipe.num_classes} | recipe.model_kwargs,
        input_shape=[3, recipe.img_size, recipe.img_size],
        preprocessing={
            # CIFAR-10 loaders see whole 32x32 images: new images are resized whole; folders use the eval crop.
            "resize": "whole" if recipe.data_format == "cifar10" else "eval_crop",
            "img_size": recipe.img_size,
            "crop_pct": recipe.crop_pct,
            "interpolation": recipe.interpolation,
            "mean": list(recipe.mean),
            "std": list(recipe.std),
        },
        recipe=recipe.name or None,
    )


def _recipe_for(name: str) -> Recipe:
    """A recipe by name, or the defaults of a bare model name, from its registered configuration."""
    from visionzoo.models import is_model, model_cfg
    from visionzoo.recipes import get_recipe, list_recipes

    if any(r.name == name for r in list_recipes()):
        return get_recipe(name)
    if not is_model(name):
        raise VisionZooError(f"{name!r}: neither a recipe nor a registered model (see visionzoo recipes / models)")
    cfg = model_cfg(name)
    if cfg.task == "proposals":
        return ProposalRecipe(model=name)
    if cfg.task == "video_classification":
        return VideoClassifierRecipe(model=name, feat_dim=cfg.input_size[0], temporal_scale=cfg.input_size[1])
    return ClassificationRecipe(
        model=name,
        img_size=cfg.input_size[-1],
        crop_pct=cfg.crop_pct,
        interpolation=cfg.interpolation,
        mean=list(cfg.mean),
        std=list(cfg.std),
    )


def _apply_run_config(recipe: Recipe, config: dict[str, Any], config_file: Path) -> Recipe:
    """The recipe as that run trained it: the fields of its config.yaml that the recipe type knows."""
    if config.get("model") != recipe.model:
        return recipe  # another model's run: its settings say nothing about this one
    return merge_values(recipe, config, str(config_file), strict=False)


def class_names_of_data(data_format: str, data: str) -> list[str] | None:
    """Class names of a CIFAR-10 or image-folder dataset as its loader numbers them, if it exists here.

    Read cheaply (the meta file, the train folder names); a built-in dataset is never generated for this.
    """
    from visionzoo.data.builtin import resolve_data

    if data_format not in ("cifar10", "imagefolder") or not data:
        return None
    root = resolve_data(data, data_format, make=False)
    if data_format == "cifar10":
        from visionzoo.data.cifar10 import META_FILE, read_class_names

        return read_class_names(root) if (root / META_FILE).is_file() else None
    from visionzoo.data.imagefolder import find_classes

    return find_classes(root / "train") or None if (root / "train").is_dir() else None


def _run_metrics(summary_file: Path) -> dict[str, Any]:
    from visionzoo.engine.progress import read_summary

    summary = read_summary(summary_file)
    final = {k: v for k, v in summary.final.items() if isinstance(v, int | float) and not k.startswith("train_")}
    return {"best": summary.best.model_dump(), "final": final, "epochs": summary.epochs}


def _num_classes_in(checkpoint: Path, card: ModelCard) -> int | None:
    """The class count of the checkpoint's classifier (for bare model names, whose default is 1000)."""
    from visionzoo.models.weights import classifier_keys, read_state_dict

    model = card.build_model()
    keys = sorted(k for k in classifier_keys(model) if k.endswith("weight"))
    state = read_state_dict(checkpoint)
    return int(state[keys[0]].shape[0]) if keys and keys[0] in state else None


def resolve_recipe(name: str, checkpoint: Path | None) -> tuple[Recipe, dict[str, Any]]:
    """(recipe, run config): `name`'s recipe as the checkpoint's run trained it (its config.yaml, when that run
    trained the same model), e.g. its data, which int8 calibration reads."""
    recipe, config = _recipe_for(name), {}
    config_file = checkpoint.parent / "config.yaml" if checkpoint is not None else None
    if config_file is not None and config_file.is_file():
        config = read_yaml_mapping(config_file, "run config")
        recipe = _apply_run_config(recipe, config, config_file)
    return recipe, config


def resolve_card(name: str, checkpoint: str | Path | None = None, img_size: int | None = None) -> ModelCard:
    """The card of `name` (recipe or model) for `checkpoint`, from every source described in the module doc."""
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    run_dir = checkpoint.parent if checkpoint is not None else None
    if run_dir is not None:
        remove_stale_temporaries(run_dir)
    recipe, config = resolve_recipe(name, checkpoint)
    if img_size is not None:
        if not isinstance(recipe, ClassificationRecipe):
            raise VisionZooError(f"--img-size {img_size}: {recipe.model} takes features, not images")
        recipe = recipe.replace(img_size=img_size)
    card = card_from_recipe(recipe)
    trained_here = config.get("model") == card.model
    if card.task in ("proposals", "video_classification") and trained_here and isinstance(config.get("features"), dict):
        card.preprocessing["features"] = config["features"]  # how its training features were made (features.json)
    if card.task == "video_classification" and trained_here and isinstance(config.get("class_names"), list):
        card.class_names = [str(name) for name in config["class_names"]]  # the data's labels, as it numbered them
    if checkpoint is not None and card_path(checkpoint).is_file():
        shipped = read_card(card_path(checkpoint))
        if shipped.model != card.model:
            raise VisionZooError(f"{card_path(checkpoint)}: a card of {shipped.model}, not of {card.model}")
        if img_size is not None:
            shipped.input_shape, shipped.preprocessing["img_size"] = card.input_shape, img_size
        shipped.export = {"checkpoint": str(checkpoint)}
        return shipped
    if card.task == "video_classification" and checkpoint is not None and not card.model_kwargs["num_classes"]:
        card.model_kwargs["num_classes"] = _num_classes_in(checkpoint, card)  # recipes take it from the data
    if card.task == "classification":
        if isinstance(recipe, ClassificationRecipe) and recipe.data_format:
            card.class_names = class_names_of_data(recipe.data_format, str(recipe.data))
        if checkpoint is not None and not recipe.name:
            found = _num_classes_in(checkpoint, card)
            if found is not None:
                card.model_kwargs["num_classes"] = found
        classes = card.model_kwargs.get("num_classes")
        if card.class_names is not None and len(card.class_names) != classes:
            card.class_names = None  # names of another dataset than the one this classifier was trained on
    if run_dir is not None and (run_dir / "summary.json").is_file():
        card.metrics = _run_metrics(run_dir / "summary.json")
    if checkpoint is not None:
        card.export["checkpoint"] = str(checkpoint)
    return card
