"""`visionzoo export`, `visionzoo predict` and the inference runtimes of `visionzoo bench` (wired in cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionzoo.errors import VisionZooError

if TYPE_CHECKING:  # torch and the model code load only when a command runs, not for `visionzoo --help`
    import torch

    from visionzoo.export.model_card import ModelCard
    from visionzoo.recipes.base import Recipe

logger = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime")


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    return p


def add_predict_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict", help="top-k classes of images, or BMN proposals of feature CSVs, from a checkpoint or ONNX file"
    )
    p.add_argument("target", metavar="RECIPE", help="recipe or model name (with --onnx: checked against the file)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image or feature CSV files, or folders")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="PyTorch weights (.safetensors or .pt)")
    source.add_argument("--onnx", type=Path, help="an ONNX file written by visionzoo export")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output", type=Path, help="classes: FILE.csv or FILE.json; BMN: the proposals JSON")
    p.add_argument("--duration-second", type=float, nargs="+", help="BMN: video duration(s), one or one per file")
    p.add_argument("--video-info", type=Path, help="BMN: video_info CSV or annotation JSON giving the durations")
    return p


def default_output(checkpoint: Path, fmt: str) -> Path:
    suffix = ".onnx" if fmt == "onnx" else ".safetensors"
    stem = checkpoint.stem if checkpoint.suffix != ".safetensors" or fmt == "onnx" else f"{checkpoint.stem}.export"
    return checkpoint.with_name(stem + suffix)


def run_export(args: argparse.Namespace) -> int:
    from visionzoo.export.model_card import card_path, resolve_card
    from visionzoo.export.onnx import EXPORT_OVERRIDES, RELATIVE_TOLERANCE, export_onnx, export_safetensors, require

    output = args.output or default_output(args.checkpoint, args.format)
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
    overrides = EXPORT_OVERRIDES.get(card.model, {})
    exportable = card.build_model(pretrained=args.checkpoint, **overrides) if overrides else model
    result = export_onnx(exportable, card, output, args.opset, args.dynamic_batch, args.exporter, reference_model=model)
    card_path(output).write_text(card.to_json())
    print(
        f"{result.path}: {card.model}, exporter {result.exporter}, opset {result.opset}, batch "
        f"{'dynamic' if result.dynamic_batch else 1}" + (f", exported with {overrides}" if overrides else "")
    )
    for check in result.checks:
        print(
            f"  onnxruntime vs PyTorch fp32, {check['inputs']} inputs, batch {check['batch']}: "
            f"max abs {check['max_abs']:.3e}, max rel {check['max_rel']:.3e} (tolerance {RELATIVE_TOLERANCE:g})"
        )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from visionzoo.export import predict

    card, runtime = predict.load_runtime(args.target, args.checkpoint, args.onnx)
    inputs = args.inputs
    if card.task == "proposals":
        from visionzoo.tasks.postprocess import write_proposals

        files = predict.expand_inputs(inputs, lambda name: name.lower().endswith(".csv"), "feature CSV files")
        durations, in_seconds = predict.video_durations(files, args.duration_second, args.video_info)
        if not in_seconds:
            logger.warning("no --duration-second or --video-info: segments are fractions of the feature span (0..1)")
        results = predict.predict_proposals(card, runtime, files, durations, args.batch_size)
        for video, found in results.items():
            best = ", ".join(f"[{p['segment'][0]:.2f}, {p['segment'][1]:.2f}] {p['score']:.3f}" for p in found[:3])
            print(f"{video}: {len(found)} proposals; best {best}")
        if args.output is not None:
            print(write_proposals(args.output, results))
        return 0
    from visionzoo.data.imagefolder import is_image_file

    files = predict.expand_inputs(inputs, is_image_file, "image files")
    predictions = predict.predict_images(card, runtime, files, args.topk, args.batch_size)
    for p in predictions:
        print(p.file + ": " + ", ".join(f"{e['name']} {e['probability']:.3f}" for e in p.topk))
    if args.output is not None:
        print(predict.write_predictions(args.output, predictions))
    return 0


# --------------------------------------------------------------------------------------------------- bench


def _runtime_for(card: ModelCard, runtime: str, dtype: torch.dtype, onnx_file: Path, threads: int | None):
    from visionzoo.export import predict
    from visionzoo.export.onnx import EXPORT_OVERRIDES, export_onnx

    if runtime == "torch":
        return predict.TorchRuntime(card.build_model(), dtype), None
    model = card.build_model(**EXPORT_OVERRIDES.get(card.model, {}))
    result = export_onnx(model, card, onnx_file, dynamic_batch=True)
    return predict.OnnxRuntime(onnx_file, threads), result.max_rel


def bench_inference(
    card: ModelCard,
    runtime: str = "torch",
    batch_size: int = 16,
    steps: int = 10,
    warmup: int = 2,
    dtypes: tuple[str, ...] = ("fp32", "bf16"),
    workdir: Path | None = None,
) -> list[dict[str, Any]]:
    """Inference speed of a model card's network (random weights: speed does not depend on them).

    One row per dtype the runtime supports: batch-1 latency (ms per item, median and p90 of `steps` calls)
    and throughput at `batch_size` (items/s over max(2, steps // 3) calls), with torch's intra-op thread count
    (onnxruntime gets the same). onnxruntime runs the fp32 export (dynamic batch, verified against PyTorch
    first; its parity is reported); bf16 is torch autocast only: onnxruntime's CPU Conv has no bf16 kernel,
    and an fp16 export runs but is no faster than fp32 (ResNet-50, batch 1: 171 vs 162 ms).
    """
    import tempfile

    import torch

    from visionzoo.export import predict
    from visionzoo.export.onnx import example_inputs

    if runtime not in RUNTIMES:
        raise VisionZooError(f"--runtime {runtime}: expected one of {', '.join(RUNTIMES)}")
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for dtype_name in dtypes if runtime == "torch" else ("fp32",):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            run, export_rel = _runtime_for(
                card, runtime, dtype, Path(tmp) / f"{card.model}.onnx", torch.get_num_threads()
            )
            single = example_inputs(card, 1, "real").numpy()
            many = example_inputs(card, batch_size, "real").numpy()
            latency = predict.latency_stats(predict.time_runtime(run, single, steps, warmup), 1)
            throughput = predict.latency_stats(predict.time_runtime(run, many, max(2, steps // 3), 1), batch_size)
            rows.append(
                {
                    "model": card.model,
                    "runtime": runtime,
                    "dtype": dtype_name,
                    "input": "x".join(str(d) for d in card.input_shape),
                    "ms_per_item_b1_median": latency["ms_per_item_median"],
                    "ms_per_item_b1_p90": latency["ms_per_item_p90"],
                    "batch_size": batch_size,
                    "items_per_sec": throughput["items_per_sec"],
                    "threads": torch.get_num_threads(),
                    "onnx_max_rel": export_rel,  # onnxruntime vs PyTorch fp32 at export (None for torch)
                }
            )
    return rows


def bench_recipe_inference(
    recipe: Recipe, runtime: str = "torch", steps: int = 10, warmup: int = 2, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """`visionzoo bench RECIPE --runtime torch|onnxruntime`: batch-1 latency and throughput at the recipe's
    batch size (`-b`); torch in fp32 and bf16 autocast, onnxruntime on the fp32 export (dynamic batch)."""
    from visionzoo.export.model_card import card_from_recipe

    return bench_inference(card_from_recipe(recipe), runtime, batch_size or recipe.batch_size, steps, warmup)


def bench_onnxruntime(
    recipe: Recipe, steps: int = 10, warmup: int = 2, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """The onnxruntime runtime of `bench`: export the recipe's model (checked against PyTorch) and time it."""
    return bench_recipe_inference(recipe, "onnxruntime", steps, warmup, batch_size)


def format_inference_bench(rows: list[dict[str, Any]], as_json: bool = False) -> str:
    if as_json:
        return json.dumps(rows)
    return "\n".join(
        f"{r['model']} {r['runtime']} {r['dtype']} input {r['input']}, {r['threads']} threads: batch 1 "
        f"{r['ms_per_item_b1_median']:.2f} ms/item (p90 {r['ms_per_item_b1_p90']:.2f}); batch {r['batch_size']} "
        f"{r['items_per_sec']:.1f} items/s"
        for r in rows
    )
