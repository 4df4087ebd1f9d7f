"""Deployment speed of every registered model in every runtime: PyTorch eager and compiled with freezing (fp32,
bf16 autocast), onnxruntime (fp32 ONNX export), OpenVINO (fp32, bf16; when installed), and `auto`'s pick.

Batch-1 latency (ms per item, median and p90) and throughput at a larger batch, seeded random weights (speed
does not depend on them), on this machine's CPU. Each ONNX conversion is first checked against PyTorch (parity
below 1e-4 relative) by the same code as `visionzoo export`. The `auto` rows check the rule of
`export/runtime.auto_runtime` against the best of the others.
Runs with 1 thread by default: on this 2-core machine shared with other jobs, 2 OpenMP threads made PyTorch
3-15x slower and erratic (ResNet-50 batch 1: 0.5-3.4 s per call vs a steady 0.17-0.24 s with one thread).
Usage: python benchmarks/bench_inference.py [--models NAME ...] [--runtimes NAME ...] [--steps N] [--threads N]
[--quick] (`--quick`: 1 timed call, prints its rows and writes nothing)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

from visionzoo.errors import VisionZooError  # noqa: E402
from visionzoo.export.inference_bench import bench_inference  # noqa: E402
from visionzoo.export.model_card import ModelCard, card_from_recipe  # noqa: E402
from visionzoo.export.runtime import RUNTIMES  # noqa: E402
from visionzoo.models import list_models, model_cfg  # noqa: E402
from visionzoo.recipes import get_recipe  # noqa: E402
from visionzoo.recipes.base import ClassificationRecipe, ProposalRecipe  # noqa: E402

ASCEND_310_MS = {"resnet50_bam": 4.83}  # seed 004: MindSpore AIR model on an Ascend 310, per image


def card_for(name: str) -> tuple[ModelCard, int]:
    """(card, throughput batch): ImageNet models at 224, cspdarknet53 at 32 with 10 classes, BMN at T=100/400-d,
    the video classifier as anet_video_classifier runs it (ActivityNet's 200 classes)."""
    if name == "bmn":
        return card_from_recipe(ProposalRecipe(model=name)), 8
    if name == "video_mlp":
        return card_from_recipe(get_recipe("anet_video_classifier").replace(num_classes=200)), 16
    if name == "cspdarknet53":
        return card_from_recipe(ClassificationRecipe(model=name, num_classes=10, img_size=32)), 64
    return card_from_recipe(ClassificationRecipe(model=name, num_classes=1000, img_size=224)), 8


def main() -> None:
    parser = argparse.ArgumentParser()
    zoo = [m for m in list_models() if not m.startswith("tiny_test") and model_cfg(m).task != "video_features"]
    parser.add_argument("--models", nargs="+", default=zoo)
    parser.add_argument("--steps", type=int, default=10, help="timed batch-1 calls (throughput: steps // 3)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every runtime")
    parser.add_argument("--runtimes", nargs="+", default=[r for r in RUNTIMES if r != "auto"] + ["auto"])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 timed call, no writing")
    args = parser.parse_args()
    steps = 1 if args.quick else args.steps
    if args.quick:  # nor the machine's peak: a smoke run on a busy machine must not leave its measurement cached
        os.environ["VISIONZOO_CACHE"] = tempfile.mkdtemp(prefix="bench_inference_quick_")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    begin = time.monotonic()
    for name in args.models:
        torch._dynamo.reset()  # each model compiles from scratch: in one process they hit the recompile limit
        card, batch = card_for(name)
        for runtime in args.runtimes:
            try:
                found = bench_inference(card, runtime, batch_size=batch, steps=steps, warmup=2)
            except VisionZooError as err:  # a runtime unavailable here (extra not installed, no compiler)
                print(f"{name} {runtime}: {err}", flush=True)
                continue
            for row in found:
                shown = {
                    "model": name,
                    "input": row["input"],
                    "runtime": row["runtime"],
                    "dtype": row["dtype"],
                    "b1 ms/item median": f"{row['ms_per_item_b1_median']:.2f}",
                    "b1 ms/item p90": f"{row['ms_per_item_b1_p90']:.2f}",
                    "batch": row["batch_size"],
                    "items/s": f"{row['items_per_sec']:.1f}",
                    "GFLOP/item": f"{row['gflops_per_item']:.3f}",
                    "MFU": f"{100 * row['mfu']:.1f} %",
                }
                print(shown, flush=True)
                rows.append(shown)
    if args.quick:
        return
    elapsed = time.monotonic() - begin
    reference = ", ".join(f"{k} {v} ms/image" for k, v in ASCEND_310_MS.items())
    body = "\n".join(
        [
            f"{args.threads} thread(s) per runtime; 1-min load average {load_before:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (the machine is shared); "
            "onnxruntime fp32 (CPUExecutionProvider, ORT_ENABLE_ALL), OpenVINO at an explicit inference "
            "precision, both on the ONNX from the legacy TorchScript exporter (opset 17, dynamic batch; BMN in "
            "its GEMM formulation); torch fp32 and bf16 autocast under inference_mode, eager and compiled "
            "(inductor, freezing; BMN in its GEMM formulation); `auto: X` is the rule's pick at the precision "
            "`--amp auto` takes here. Random weights. MFU: the fp32 "
            "forward FLOPs PyTorch runs per item x items/s (at the batch shown) over this machine's measured "
            "peak for the dtype. "
            f"Seed reference (Ascend 310, MindSpore AIR): {reference}. Whole run: {elapsed:.0f} s.",
            "",
            markdown_table(rows),
            "",
            "`auto` against the fastest runtime of each model (goal: at least as fast, at batch 1 and at the "
            "larger batch):",
            "",
            markdown_table(auto_against_best(rows)),
        ]
    )
    write_section("bench_inference", body)


def auto_against_best(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per model: the fastest runtime at batch 1 and at the larger batch, and the speed of auto's pick over it,
    read from the pick's own row (the `auto` row re-times the same runtime, and two timings of one runtime
    differ by the machine's noise, not by the rule)."""
    summary = []
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        auto = next((row for row in mine if str(row["runtime"]).startswith("auto: ")), None)
        if auto is None:
            continue
        picked = str(auto["runtime"]).removeprefix("auto: ")
        others = [row for row in mine if row is not auto]
        pick = next((row for row in others if (row["runtime"], row["dtype"]) == (picked, auto["dtype"])), auto)
        fastest_b1 = min(others, key=lambda row: float(row["b1 ms/item median"]))
        fastest_batch = max(others, key=lambda row: float(row["items/s"]))
        b1_ratio = float(fastest_b1["b1 ms/item median"]) / float(pick["b1 ms/item median"])
        summary.append(
            {
                "model": model,
                "auto picks": f"{picked} {auto['dtype']}",
                "fastest b1": f"{fastest_b1['runtime']} {fastest_b1['dtype']}",
                "auto / fastest b1": f"{b1_ratio:.2f}x",
                "fastest batch": f"{fastest_batch['runtime']} {fastest_batch['dtype']}",
                "auto / fastest batch": f"{float(pick['items/s']) / float(fastest_batch['items/s']):.2f}x",
            }
        )
    return summary


if __name__ == "__main__":
    main()
