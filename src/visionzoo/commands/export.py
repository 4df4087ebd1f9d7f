"""`visionzoo export`: a checkpoint to ONNX (checked in onnxruntime against PyTorch) or to safetensors + a card."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionzoo.commands import int_at_least
from visionzoo.errors import VisionZooError
from visionzoo.files import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX (checked in onnxruntime) or to safetensors + a model card"
    )
    p.add_argument("model", metavar="MODEL_OR_RECIPE", help="a recipe name (its input size, classes) or a model name")
    p.add_argument("--checkpoint", type=Path, required=True, help="weights (.safetensors or .pt)")
    p.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX: symbolic batch size (checked at 1 and 3)")
    p.add_argument("--exporter", choices=("auto", "torchscript", "dynamo"), default="auto")
    p.add_argument("--img-size", type=int, help="image side to export at (default: the recipe's)")
    p.add_argument("--output", type=Path, help="output file (default: beside the checkpoint, <stem>.onnx)")
    p.add_argument(
        "--quantize",
        choices=("int8",),
        help="static int8 (onnxruntime QDQ, per-channel) calibrated on the recipe's data: writes <stem>.int8.onnx",
    )
    p.add_argument(
        "--calibration-batches", type=int_at_least(1), default=8, help="int8: validation batches to calibrate on"
    )
    p.set_defaults(run=run)


def default_output(checkpoint: Path, fmt: str, quantize: str | None = None) -> Path:
    suffix = f".{quantize}.onnx" if quantize else ".onnx" if fmt == "onnx" else ".safetensors"
    stem = checkpoint.stem if checkpoint.suffix != ".safetensors" or fmt == "onnx" else f"{checkpoint.stem}.export"
    return checkpoint.with_name(stem + suffix)


def run(args: argparse.Namespace) -> int:
    from visionzoo.export.model_card import card_path, resolve_card
    from visionzoo.export.onnx import RELATIVE_TOLERANCE, export_onnx
    from visionzoo.export.runtime import require
    from visionzoo.export.safetensors import export_safetensors

    if args.quantize and args.format != "onnx":
        raise VisionZooError(f"--quantize {args.quantize}: only with --format onnx")
    output = args.output or default_output(args.checkpoint, args.format, args.quantize)
    if output.resolve() == args.checkpoint.resolve():
        raise VisionZooError(f"--output {output}: would overwrite the checkpoint")
    if args.format == "onnx":  # fail on a missing extra before any work
        require("onnx")
        require("onnxruntime")
    card = resolve_card(args.model, args.checkpoint, args.img_size)
    model = card.build_model(pretrained=args.checkpoint)
    if args.format == "safetensors":
        weights, card_file = export_safetensors(model, card, output)
        print(f"{weights}\n{card_file}")
        return 0
    if args.quantize:
        return _quantize(args, model, card, output)
    result = export_onnx(model, card, output, args.opset, args.dynamic_batch, args.exporter)
    write_text(card_path(output), card.to_json())
    batch = "dynamic" if result.dynamic_batch else 1
    print(f"{result.path}: {card.model}, exporter {result.exporter}, opset {result.opset}, batch {batch}")
    for check in result.checks:
        print(
            f"  onnxruntime vs PyTorch fp32, {check['inputs']} inputs, batch {check['batch']}: "
            f"max abs {check['max_abs']:.3e}, max rel {check['max_rel']:.3e} (tolerance {RELATIVE_TOLERANCE:g})"
        )
    return 0


def _quantize(args: argparse.Namespace, model, card, output: Path) -> int:
    """The int8 export: calibrated on the data of the checkpoint's run (else the recipe's own data)."""
    from visionzoo.export.model_card import card_path, resolve_recipe
    from visionzoo.export.quantize import quantize_int8

    recipe, _ = resolve_recipe(args.model, args.checkpoint)
    if args.img_size is not None:
        recipe = recipe.replace(img_size=args.img_size)
    quantize_int8(model, card, recipe, output, args.calibration_batches)
    write_text(card_path(output), card.to_json())
    print(f"{output}: {card.model}, int8 ({card.export['quantization']['calibration']})")
    return 0
