"""`visionzoo recipes` and `visionzoo models`: what can be trained and built."""

from __future__ import annotations

import argparse
import json


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
    from visionzoo.models import list_models

    print("\n".join(list_models(args.pattern)))
    return 0
