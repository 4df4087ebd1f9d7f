"""int8 against fp32, per model: throughput at batch 1 and 8, and what int8 costs in accuracy on built-in data.

For each model: the fp32 ONNX export (checked against PyTorch) and its static int8 quantization
(`visionzoo export --quantize int8`: onnxruntime QDQ, per-channel, calibrated on the first batches of the
recipe's validation data), both timed in onnxruntime (and OpenVINO when installed), then both evaluated on
the same built-in data: digits for cspdarknet53 at 32 px, the image-folder demo for the ImageNet models, the
ActivityNet demo for BMN. Weights: `--weights MODEL=FILE` (a trained checkpoint of that recipe), else seeded
random weights, for which the accuracy columns only say whether int8 changes the predictions.
Usage: python benchmarks/bench_int8.py [--models NAME ...] [--weights MODEL=FILE ...] [--threads N] [--quick]
`--quick` is a smoke run (1 timed call, 1 calibration batch) that prints its rows and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

from visionzoo.engine.evaluate import evaluate_checkpoint  # noqa: E402
from visionzoo.export.model_card import card_from_recipe  # noqa: E402
from visionzoo.export.onnx import example_inputs  # noqa: E402
from visionzoo.export.quantize import quantize_int8  # noqa: E402
from visionzoo.export.runtime import (  # noqa: E402
    OnnxRuntime,
    OpenVinoRuntime,
    RuntimeModule,
    converted_onnx,
    latency_stats,
    time_runtime,
    weights_hash,
)
from visionzoo.recipes import get_recipe  # noqa: E402

# model -> (recipe, overrides): the built-in data each is evaluated on
MODELS = {
    "resnet50_bam": ("resnet50_bam_imagenet", {"data": "imagefolder-demo", "num_classes": 10}),
    "cspdarknet53": ("cspdarknet53_cifar10", {"data": "digits"}),
    "ghostnet_100": ("ghostnet_imagenet", {"model": "ghostnet_100", "data": "imagefolder-demo", "num_classes": 10}),
    "bmn": ("bmn_anet", {"data": "demo"}),
}
HEADLINE = ("top1", "AR@100")  # the metric compared per task


def _runtimes(fp32: Path, int8: Path, threads: int) -> dict[tuple[str, str], object]:
    runs: dict[tuple[str, str], object] = {("onnxruntime", "fp32"): OnnxRuntime(fp32, threads)}
    runs[("onnxruntime", "int8")] = OnnxRuntime(int8, threads)
    try:
        runs[("openvino", "fp32")] = OpenVinoRuntime(fp32, threads=threads)
        runs[("openvino", "int8")] = OpenVinoRuntime(int8, threads=threads)
    except Exception as err:  # noqa: BLE001 - the optional extra: its absence is one line, not a failure
        print(f"openvino skipped: {err}", flush=True)
    return runs


def bench_model(name: str, weights: Path | None, threads: int, steps: int, calibration: int, tmp: Path) -> list[dict]:
    recipe_name, overrides = MODELS[name]
    recipe = get_recipe(recipe_name).replace(amp="off", workers=0, **overrides)
    card = card_from_recipe(recipe)
    if weights is None:
        torch.manual_seed(0)
        weights = tmp / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in card.build_model().state_dict().items()}, str(weights))
    model = card.build_model(pretrained=weights)
    fp32 = converted_onnx(card, weights_hash(weights, card), lambda: model)
    int8 = quantize_int8(model, card, recipe, tmp / f"{name}.int8.onnx", calibration)
    key, metric = "", {}
    for dtype, file in (("fp32", fp32), ("int8", int8)):
        result = evaluate_checkpoint(recipe, weights, tmp / dtype, RuntimeModule(OnnxRuntime(file, threads)))
        key = next(k for k in HEADLINE if k in result)
        metric[dtype] = result[key]
    rows = []
    for (runtime, dtype), run in _runtimes(fp32, int8, threads).items():
        row = {"model": name, "input": "x".join(map(str, card.input_shape)), "runtime": runtime, "dtype": dtype}
        for batch in (1, 8):
            x = example_inputs(card, batch, "real").numpy()
            row[f"b{batch} items/s"] = latency_stats(time_runtime(run, x, steps, 1), batch)["items_per_sec"]
        rows.append(row)
    fp32_speed = {r["runtime"]: (r["b1 items/s"], r["b8 items/s"]) for r in rows if r["dtype"] == "fp32"}
    for row in rows:
        base = fp32_speed[row["runtime"]]
        row["vs fp32 b1 / b8"] = f"{row['b1 items/s'] / base[0]:.2f}x / {row['b8 items/s'] / base[1]:.2f}x"
        row["b1 items/s"], row["b8 items/s"] = f"{row['b1 items/s']:.1f}", f"{row['b8 items/s']:.1f}"
        row["accuracy (onnxruntime)"] = f"{key} {metric[row['dtype']]:.2f}"  # one column for every task's metric
        row["int8 - fp32 (points)"] = f"{metric['int8'] - metric['fp32']:+.2f}"
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--weights", nargs="*", default=[], help="MODEL=FILE: a trained checkpoint of that model")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each runtime")
    parser.add_argument("--steps", type=int, default=10, help="timed calls per batch size")
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 step, 1 calibration batch, no writing")
    args = parser.parse_args()
    steps, calibration = (1, 1) if args.quick else (args.steps, args.calibration_batches)
    weights = dict(item.split("=", 1) for item in args.weights)
    torch.set_num_threads(args.threads)
    load_before, begin, rows = os.getloadavg()[0], time.monotonic(), []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            given = Path(weights[name]) if name in weights else None
            rows += bench_model(name, given, args.threads, steps, calibration, Path(tmp))
    if args.quick:
        return
    trained = ", ".join(f"{k}: {v}" for k, v in weights.items()) or "none (seeded random weights for every model)"
    body = "\n".join(
        [
            f"{args.threads} thread(s) per runtime, {steps} timed calls per batch size; 1-min load average "
            f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end. fp32: the ONNX export "
            "(legacy exporter, opset 17, dynamic batch); int8: onnxruntime `quantize_static` (QDQ, per-channel "
            f"int8 weights and activations) calibrated on {calibration} validation batches. Accuracy: top-1 "
            "(AR@100 for BMN) of both files in onnxruntime on the built-in data (digits for cspdarknet53, the "
            f"image-folder demo for the ImageNet models, the ActivityNet demo for BMN). Trained weights: {trained}. "
            f"Whole run: {time.monotonic() - begin:.0f} s.",
            "",
            markdown_table(rows),
        ]
    )
    write_section("bench_int8", body)


if __name__ == "__main__":
    main()
