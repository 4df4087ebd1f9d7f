"""The `visionzoo` command: argument parsing and dispatch only.

Recipe commands (train, eval, bench) parse in two stages: the recipe name first, then a parser that has
one flag per field of that recipe, so `--help` after a recipe lists exactly what can be overridden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from visionzoo.errors import VisionZooError

RECIPE_COMMANDS = ("train", "eval", "bench")


class _Parser(argparse.ArgumentParser):
    """Bad usage ends with one line naming the option, not a usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _recipe_parser(command: str, recipe) -> _Parser:
    from visionzoo.recipes.overrides import add_recipe_arguments

    parser = _Parser(prog=f"visionzoo {command} {recipe.name}", description=recipe.description)
    if command == "train":
        parser.add_argument("--output", type=Path, help="run directory (default runs/<recipe>/<timestamp>)")
        parser.add_argument("--resume", help="'auto' (latest state of the run directory) or a run dir / state file")
        parser.add_argument("--finetune", type=Path, help="initial weights; a classifier of another shape is dropped")
        parser.add_argument("--devices", type=int, default=1, help="start N processes on this machine via torchrun")
    if command == "eval":
        parser.add_argument("--checkpoint", type=Path, required=True, help="weights (.safetensors or .pt)")
        parser.add_argument("--output", type=Path, help="where eval outputs go (default: beside the checkpoint)")
    if command == "bench":
        parser.add_argument("--mode", choices=("train", "infer"), default="train")
        parser.add_argument(
            "--runtime",
            choices=("torch", "onnxruntime"),
            help="inference in this runtime: batch-1 latency (median, p90) and throughput at --batch-size",
        )
        parser.add_argument("--steps", type=int, default=10, help="timed steps")
        parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    if command in ("eval", "bench"):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--config", type=Path, help="YAML file of recipe fields (applied before flags)")
    add_recipe_arguments(parser, recipe)
    return parser


def _resolve_recipe(command: str, name: str, argv: list[str]):
    from visionzoo.recipes import get_recipe
    from visionzoo.recipes.overrides import apply_arguments, apply_yaml

    recipe = get_recipe(name)
    args = _recipe_parser(command, recipe).parse_args(argv)
    if args.config is not None:
        recipe = apply_yaml(recipe, args.config)
    return apply_arguments(recipe, args), args


def cmd_recipes(args: argparse.Namespace) -> int:
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


def cmd_models(args: argparse.Namespace) -> int:
    from visionzoo.models import list_models

    print("\n".join(list_models(args.pattern)))
    return 0


def cmd_train(recipe, args: argparse.Namespace, argv: list[str]) -> int:
    if args.devices > 1 and "WORLD_SIZE" not in os.environ:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.devices}"]
        forwarded = [a for i, a in enumerate(argv) if a != "--devices" and (i == 0 or argv[i - 1] != "--devices")]
        forwarded = [a for a in forwarded if not a.startswith("--devices=")]
        return subprocess.call([*launch, "-m", "visionzoo", "train", recipe.name, *forwarded])
    from visionzoo.engine.trainer import RunOptions, train

    summary = train(recipe, RunOptions(output=args.output, resume=args.resume, finetune=args.finetune))
    return 3 if summary.get("interrupted") else 0


def cmd_eval(recipe, args: argparse.Namespace) -> int:
    from visionzoo.engine.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(recipe, args.checkpoint, args.output)
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key} : {value:.4f}" if isinstance(value, float) else f"{key} : {value}")
    return 0


def cmd_bench(recipe, args: argparse.Namespace) -> int:
    if args.runtime is not None:
        from visionzoo.export.cli_commands import bench_recipe_inference, format_inference_bench

        rows = bench_recipe_inference(recipe, args.runtime, steps=args.steps, warmup=args.warmup)
        print(format_inference_bench(rows, args.json))
        return 0
    from visionzoo.engine.bench import bench, format_bench

    result = bench(recipe, args.mode, steps=args.steps, warmup=args.warmup)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "make-digits":
        from visionzoo.data.builtin.digits import make_digits

        path = make_digits(args.out)
    elif args.data_command == "make-anet-demo":
        from visionzoo.data.builtin.anet_demo import make_anet_demo

        path = make_anet_demo(args.out, videos=args.videos, seed=args.seed)
    else:
        from visionzoo.data.builtin.imagefolder_demo import make_imagefolder

        path = make_imagefolder(
            args.out, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed
        )
    print(path)
    return 0


def cmd_eval_proposals(args: argparse.Namespace) -> int:
    from visionzoo.tasks.anet_metrics import evaluate_proposals_file

    metrics = evaluate_proposals_file(args.ground_truth, args.proposals, plot=args.plot)
    keys = ("AR@1", "AR@5", "AR@10", "AR@100", "AUC")
    if args.json:
        print(json.dumps({k: metrics[k] for k in keys}))
    else:
        print("\n".join(f"{k} : {metrics[k]:.2f}" for k in keys))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from visionzoo.commands.demo import run_demo

    for path in run_demo(args.recipe, args.checkpoint, args.data, args.video, args.output):
        print(path)
    return 0


def _base_parser() -> _Parser:
    parser = _Parser(prog="visionzoo", description="A PyTorch model zoo: train, evaluate, benchmark and export.")
    parser.add_argument("--version", action="version", version=f"visionzoo {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("recipes", help="list the recipes with their settings and reference results")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default="*")
    for command, text in (
        ("train", "train a recipe"),
        ("eval", "evaluate a checkpoint"),
        ("bench", "measure training or inference speed"),
    ):
        p = sub.add_parser(command, help=text, add_help=False)
        p.add_argument("recipe")
    p = sub.add_parser("eval-proposals", help="AR@AN and AUC of a proposals JSON, as the ActivityNet toolkit")
    p.add_argument("--ground-truth", type=Path, required=True, help="ActivityNet database JSON or BSN annotation dir")
    p.add_argument("--proposals", type=Path, required=True, help="proposals JSON (ActivityNet format)")
    p.add_argument("--plot", type=Path, help="also write the AR-AN curve to this PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object (values in percent)")
    p = sub.add_parser("demo", help="BMN on one video: candidates CSV, proposals JSON and a plot in output/demo/")
    p.add_argument("model", choices=("bmn",))
    p.add_argument("--recipe", default="bmn_anet")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", default="demo", help="dataset directory in the BSN layout, or 'demo'")
    p.add_argument("--video", help="video name (default: the first validation video)")
    p.add_argument("--output", type=Path, default=Path("output/demo"))
    from visionzoo.export.cli_commands import add_export_parser, add_predict_parser

    add_export_parser(sub)
    add_predict_parser(sub)
    p = sub.add_parser("data", help="make datasets in the formats the recipes read")
    data = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    d = data.add_parser("make-digits", help="scikit-learn digits in the CIFAR-10 python format")
    d.add_argument("out", type=Path)
    d = data.add_parser("make-anet-demo", help="synthetic ActivityNet features in the BSN/BMN layout")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int, default=600)
    d.add_argument("--seed", type=int, default=0)
    d = data.add_parser("make-imagefolder", help="generated JPEGs in the ImageNet train/val folder layout")
    d.add_argument("out", type=Path)
    d.add_argument("--classes", type=int, default=10)
    d.add_argument("--per-class", type=int, default=50)
    d.add_argument("--size", type=int, default=96)
    d.add_argument("--seed", type=int, default=0)
    return parser


def _version() -> str:
    from visionzoo import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from visionzoo.engine.progress import setup_logging

    setup_logging()
    try:
        if argv and argv[0] in RECIPE_COMMANDS and len(argv) > 1 and not argv[1].startswith("-"):
            command, name, rest = argv[0], argv[1], argv[2:]
            recipe, args = _resolve_recipe(command, name, rest)
            if command == "train":
                return cmd_train(recipe, args, rest)
            return cmd_eval(recipe, args) if command == "eval" else cmd_bench(recipe, args)
        args = _base_parser().parse_args(argv)
        if args.command in RECIPE_COMMANDS:  # reached only with a flag before the recipe, or none
            raise VisionZooError(f"usage: visionzoo {args.command} RECIPE [options] (see visionzoo recipes)")
        from visionzoo.export.cli_commands import run_export, run_predict

        commands = {
            "export": run_export,
            "predict": run_predict,
            "recipes": cmd_recipes,
            "models": cmd_models,
            "data": cmd_data,
            "eval-proposals": cmd_eval_proposals,
            "demo": cmd_demo,
        }
        return commands[args.command](args)
    except VisionZooError as err:
        print(f"visionzoo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("visionzoo: interrupted", file=sys.stderr)
        return 130
