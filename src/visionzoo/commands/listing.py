"""`visionzoo recipes` and `visionzoo models`: what can be trained and built."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module to build its parser: heavy imports wait until used
    from visionzoo.models.registry import ModelCfg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("recipes", help="list the recipes with their settings and reference results")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_recipes)
    p = subparsers.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(run=run_models)


def run_recipes(args: argparse.Namespace) -> int:
    from visionzoo.recipes import list_recipes

    recipes = list_recipes()
    if args.json:
        print(json.dumps([r.to_dict() for r in recipes], indent=2))
        return 0
    for r in recipes:
        ref = ", ".join(f"{k} {v}" for k, v in r.reference.items())
        print(f"{r.name}\n  {r.description}  [seed: {r.seed_doc}]")
        print(
            f"  model {r.model}, data {r.data_format} (default: {r.data}), {r.epochs} epochs, "
            f"batch {r.batch_size}/device, {r.optimizer} lr {r.lr}"
            + (f" at batch {r.lr_base_batch}" if r.lr_base_batch else "")
            + f", wd {r.weight_decay}, sched {r.sched}, amp {r.amp}"
        )
        print(f"  reference: {ref}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """One model a line, with what `visionzoo features --backbone NAME` would make of it."""
    from visionzoo.models import list_models, model_cfg

    names = list_models(args.pattern)
    width = max((len(name) for name in names), default=0)
    for name in names:
        cfg = model_cfg(name)
        print(f"{name:<{width}}  {PURPOSE.get(cfg.task, cfg.task)} {backbone_use(cfg, name)}".rstrip())
    if names:
        print("feature backbones also: i3d (two-stream: i3d_rgb 1024 then i3d_flow 1024; --pretrained RGB "
              "--pretrained-flow FLOW), videomae:DIR (a transformers folder)")  # fmt: skip
    return 0


PURPOSE = {
    "classification": "image classifier",
    "video_features": "video clip network",
    "proposals": "temporal action localizer (proposals of snippet features)",
    "video_classification": "video classifier (classes of snippet features, for labelled detections)",
}


def backbone_use(cfg: ModelCfg, name: str) -> str:
    """What a model gives as a feature backbone: image classifiers see snippets' centre frames, clip models clips
    cut by their published protocol; other models are none."""
    if cfg.protocol is not None:
        p = cfg.protocol
        size = "the folder's size" if name == "videomae" else f"{p.crop} px"
        fps = f"{p.fps:g} fps" if p.fps else "the video's fps"
        return f"[feature backbone: {p.modality} clips of {p.num_frames} frames every {p.stride}, {fps}, {size}]"
    if cfg.task == "classification":
        return "[feature backbone: centre frame of each snippet]"
    return ""
