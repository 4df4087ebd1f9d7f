"""`visionzoo train|eval|bench RECIPE [options]`: the commands whose options are a recipe's fields.

They parse in two stages: the recipe name first, then a parser with one flag per field of that recipe, so
`visionzoo train RECIPE --help` lists exactly what can be overridden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from visionzoo.commands import CommandParser, int_at_least
from visionzoo.errors import VisionZooError

HELP = {"train": "train a recipe", "eval": "evaluate a checkpoint", "bench": "measure training or inference speed"}


def register(subparsers: argparse._SubParsersAction) -> None:
    for command, text in HELP.items():
        p = subparsers.add_parser(command, help=text, add_help=False)
        p.add_argument("-h", "--help", action="store_true")
        p.add_argument("recipe", nargs="?")
        p.add_argument("options", nargs=argparse.REMAINDER)
        p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.recipe is None:
        usage = f"usage: visionzoo {args.command} RECIPE [options]"
        if not args.help:
            raise VisionZooError(f"{usage} (see visionzoo recipes)")
        from visionzoo.recipes import list_recipes

        print(f"{usage}\n\n{HELP[args.command]}; RECIPE is one of:")
        for recipe in list_recipes():
            print(f"  {recipe.name:28s} {recipe.description.splitlines()[0] if recipe.description else ''}")
        print(f"\nvisionzoo {args.command} RECIPE --help lists the recipe's options")
        return 0
    recipe, options = _resolve_recipe(args.command, args.recipe, args.options)
    if args.command == "train":
        return _train(recipe, options, args.options)
    return _eval(recipe, options) if args.command == "eval" else _bench(recipe, options)


def _recipe_parser(command: str, recipe) -> CommandParser:
    from visionzoo.recipes.overrides import add_recipe_arguments

    parser = CommandParser(prog=f"visionzoo {command} {recipe.name}", description=recipe.description)
    if command == "train":
        parser.add_argument("--output", type=Path, help="run directory (default runs/<recipe>/<timestamp>)")
        parser.add_argument("--resume", help="'auto' (latest state of the run directory) or a run dir / state file")
        parser.add_argument("--finetune", type=Path, help="initial weights; a classifier of another shape is dropped")
        parser.add_argument(
            "--devices", type=int_at_least(1), default=1, help="start N processes on this machine via torchrun"
        )
    if command in ("eval", "bench"):
        from visionzoo.export.runtime import RUNTIMES

        parser.add_argument("--onnx", type=Path, help="an exported model (e.g. FILE.int8.onnx) instead of weights")
    if command == "eval":
        parser.add_argument("--checkpoint", type=Path, help="weights (.safetensors or .pt)")
        parser.add_argument("--output", type=Path, help="where eval outputs go (default: beside the checkpoint)")
        parser.add_argument(
            "--runtime",
            choices=RUNTIMES,
            help="run the model in this runtime (converted from the checkpoint as needed, cached); auto picks by "
            "a rule per model kind and CPU and says why (docs/speed.md). Default: torch for a checkpoint (the "
            "numbers training reported), auto for --onnx",
        )
    if command == "bench":
        parser.add_argument("--mode", choices=("train", "infer"), default="train")
        parser.add_argument(
            "--runtime",
            choices=RUNTIMES,
            help="inference in this runtime: batch-1 latency (median, p90) and throughput at --batch-size",
        )
        parser.add_argument("--steps", type=int_at_least(1), default=10, help="timed steps")
        parser.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed steps first")
    if command in ("eval", "bench"):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--config", type=Path, help="YAML file of recipe fields (applied before flags)")
    add_recipe_arguments(parser, recipe)
    return parser


def _resolve_recipe(command: str, name: str, argv: list[str]):
    """The recipe with the YAML file and the flags applied, every value and input file checked: errors come
    before any work and before anything is written."""
    from visionzoo.files import is_regular_file
    from visionzoo.recipes import get_recipe
    from visionzoo.recipes.overrides import apply_arguments, apply_yaml, check_inputs

    recipe = get_recipe(name)
    options = _recipe_parser(command, recipe).parse_args(argv)
    if options.config is not None:
        recipe = apply_yaml(recipe, options.config)
    recipe = apply_arguments(recipe, options)
    check_inputs(recipe)
    if recipe.data == "video-demo":  # built-in data that is made by running a backbone: inference, made up here
        from visionzoo.export.feature_extractor import build_video_demo

        build_video_demo(getattr(recipe, "temporal_scale", 100), getattr(recipe, "feat_dim", 2048))
    finetune = getattr(options, "finetune", None)
    if finetune is not None and not is_regular_file(finetune):
        raise VisionZooError(f"--finetune {finetune}: no such file")
    return recipe, options


def _with_classes(recipe):
    """`--classes auto` becomes the built-in classifier's classification file (trained first when needed)."""
    if getattr(recipe, "classes", "") != "auto":
        return recipe
    from visionzoo.commands.auto_classes import classes_file

    return recipe.replace(classes=str(classes_file(recipe)))


def _train(recipe, options: argparse.Namespace, argv: list[str]) -> int:
    if options.devices > 1 and "WORLD_SIZE" not in os.environ:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={options.devices}"]
        forwarded = [a for i, a in enumerate(argv) if a != "--devices" and (i == 0 or argv[i - 1] != "--devices")]
        forwarded = [a for a in forwarded if not a.startswith("--devices=")]
        return subprocess.call([*launch, "-m", "visionzoo", "train", recipe.name, *forwarded])
    from visionzoo.engine.trainer import RunOptions, train

    recipe = _with_classes(recipe)
    summary = train(recipe, RunOptions(output=options.output, resume=options.resume, finetune=options.finetune))
    return 3 if summary.get("interrupted") else 0


def _eval(recipe, options: argparse.Namespace) -> int:
    from visionzoo.engine.evaluate import evaluate_checkpoint

    if (options.checkpoint is None) == (options.onnx is None):
        raise VisionZooError("eval: give exactly one of --checkpoint FILE or --onnx FILE")
    recipe = _with_classes(recipe)
    source = options.checkpoint or options.onnx
    model = _runtime_model(recipe, source, options.runtime or ("auto" if options.onnx is not None else "torch"))
    metrics = evaluate_checkpoint(recipe, source, options.output, model)
    if options.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key} : {value:.4f}" if isinstance(value, float) else f"{key} : {value}")
    return 0


def _runtime_model(recipe, source: Path, runtime: str):
    """The checkpoint (or ONNX file) in `runtime`, as a module for the task's evaluation step, at the precision
    `--amp` resolves to on this CPU (runtimes other than torch run on the CPU); None for PyTorch eager, which
    the evaluation builds itself (on the recipe's device, with its layout and --compile)."""
    import torch

    from visionzoo.engine.distributed import resolve_device
    from visionzoo.engine.precision import compute_dtype, resolve_amp
    from visionzoo.export.model_card import card_from_recipe
    from visionzoo.export.onnx import read_onnx_card
    from visionzoo.export.runtime import RuntimeModule, load_runtime, resolve_runtime

    card = read_onnx_card(source) if source.suffix == ".onnx" else card_from_recipe(recipe)
    if card.model != recipe.model:
        raise VisionZooError(f"--onnx {source}: a {card.model} export, not {recipe.model}")
    is_onnx = source.suffix == ".onnx"  # an ONNX file runs at its own precision (fp32 or int8), as in predict
    dtype = (
        torch.float32
        if is_onnx
        else compute_dtype(resolve_amp(recipe.amp, torch.device("cpu"), recipe.seed_amp).resolved)
    )
    runtime, _ = resolve_runtime(card, runtime, dtype, resolve_device(recipe.device, 0), is_onnx)
    if runtime == "torch" and not is_onnx:
        return None
    return RuntimeModule(load_runtime(card, source, runtime, dtype))


def _bench(recipe, options: argparse.Namespace) -> int:
    from visionzoo.engine import bench

    if options.runtime is not None or options.onnx is not None:
        from visionzoo.export.inference_bench import bench_recipe_inference, format_inference_bench

        runtime = options.runtime or "auto"
        rows = bench_recipe_inference(recipe, runtime, steps=options.steps, warmup=options.warmup, onnx=options.onnx)
        print(format_inference_bench(rows, options.json))
        return 0
    result = bench.bench(recipe, options.mode, steps=options.steps, warmup=options.warmup)
    print(json.dumps(result) if options.json else bench.format_bench(result))
    return 0
