"""`visionzoo bench RECIPE --runtime torch|onnxruntime`: inference speed of a model in a runtime, beside the
runtimes it measures (`export/runtime.py`), with MFU against this machine's measured peak."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from visionzoo.engine.flops import count_macs
from visionzoo.engine.hardware import peak_flops
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard, card_from_recipe
from visionzoo.export.onnx import example_inputs, export_onnx
from visionzoo.export.runtime import OnnxRuntime, TorchRuntime, latency_stats, time_runtime
from visionzoo.recipes.base import Recipe

RUNTIMES = ("torch", "onnxruntime")


def _runtime_for(card: ModelCard, runtime: str, dtype: torch.dtype, onnx_file: Path, threads: int | None):
    if runtime == "torch":
        return TorchRuntime(card.build_model(), dtype), None
    result = export_onnx(card.build_model(), card, onnx_file, dynamic_batch=True)
    return OnnxRuntime(onnx_file, threads), result.max_rel


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
    and an fp16 export runs but is no faster than fp32 (docs/deploy.md). MFU: the forward FLOPs PyTorch runs
    per item in fp32 x items/s over this machine's measured peak for the dtype (onnxruntime: its fp32 peak).
    """
    if runtime not in RUNTIMES:
        raise VisionZooError(f"--runtime {runtime}: expected one of {', '.join(RUNTIMES)}")
    single, many = example_inputs(card, 1, "real"), example_inputs(card, batch_size, "real")
    flops_per_item = 2 * count_macs(card.build_model(), single)  # the fp32 forward
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for dtype_name in dtypes if runtime == "torch" else ("fp32",):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            run, export_rel = _runtime_for(
                card, runtime, dtype, Path(tmp) / f"{card.model}.onnx", torch.get_num_threads()
            )
            latency = latency_stats(time_runtime(run, single.numpy(), steps, warmup), 1)
            throughput = latency_stats(time_runtime(run, many.numpy(), max(2, steps // 3), 1), batch_size)
            peak = peak_flops(dtype, torch.device("cpu"))["peak"]
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
                    "gflops_per_item": flops_per_item / 1e9,
                    "mfu": flops_per_item * throughput["items_per_sec"] / peak,
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
    return bench_inference(card_from_recipe(recipe), runtime, batch_size or recipe.batch_size, steps, warmup)


def format_inference_bench(rows: list[dict[str, Any]], as_json: bool = False) -> str:
    if as_json:
        return json.dumps(rows)
    return "\n".join(
        f"{r['model']} {r['runtime']} {r['dtype']} input {r['input']}, {r['threads']} threads: batch 1 "
        f"{r['ms_per_item_b1_median']:.2f} ms/item (p90 {r['ms_per_item_b1_p90']:.2f}); batch {r['batch_size']} "
        f"{r['items_per_sec']:.1f} items/s, MFU {100 * r['mfu']:.1f} %"
        for r in rows
    )
