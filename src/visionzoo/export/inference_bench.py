"""`visionzoo bench RECIPE --runtime auto|torch|compiled|onnxruntime|openvino [--onnx FILE]`: inference speed of
a model in a runtime (`export/runtime.py`), with MFU against this machine's measured peak."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from visionzoo.engine.flops import count_macs
from visionzoo.engine.hardware import peak_flops
from visionzoo.engine.precision import compute_dtype, resolve_amp
from visionzoo.export.model_card import ModelCard, card_from_recipe
from visionzoo.export.onnx import example_inputs, read_onnx_card
from visionzoo.export.runtime import is_int8_onnx, latency_stats, load_runtime, time_runtime
from visionzoo.recipes.base import Recipe


def _dtypes(runtime: str, wanted: tuple[str, ...], onnx: Path | None) -> tuple[str, ...]:
    """The dtypes a runtime is timed in: onnxruntime runs a file's own precision (its CPU Conv has no bf16
    kernel, and an fp16 export was no faster than fp32, docs/deploy.md); `auto` the precision rule's one."""
    if runtime == "auto":
        return ("bf16" if resolve_amp("auto", torch.device("cpu")).resolved == "bf16" else "fp32",)
    if runtime == "onnxruntime" or (onnx is not None and is_int8_onnx(onnx)):
        return ("fp32",)
    return wanted


def _random_checkpoint(card: ModelCard, folder: Path) -> Path:
    """Seeded random weights (speed does not depend on them), so the cached conversion is reused next time."""
    torch.manual_seed(0)
    path = folder / f"{card.model}.safetensors"
    save_file({k: v.contiguous() for k, v in card.build_model().state_dict().items()}, str(path))
    return path


def bench_inference(
    card: ModelCard,
    runtime: str = "torch",
    batch_size: int = 16,
    steps: int = 10,
    warmup: int = 2,
    dtypes: tuple[str, ...] = ("fp32", "bf16"),
    onnx: Path | None = None,
) -> list[dict[str, Any]]:
    """Inference speed of a model card's network (seeded random weights), or of an ONNX file (`onnx`, e.g. an
    int8 export), in `runtime`.

    One row per dtype the runtime runs: batch-1 latency (ms per item, median and p90 of `steps` calls)
    and throughput at `batch_size` (items/s over max(2, steps // 3) calls), with torch's intra-op thread count
    (the other runtimes get the same). ONNX conversions are checked against PyTorch and cached
    (`load_runtime`). MFU: the forward FLOPs PyTorch runs per item in fp32 x items/s over this machine's
    measured peak for the dtype (int8: the fp32 peak, so above 100 % is possible).
    """
    single, many = example_inputs(card, 1, "real"), example_inputs(card, batch_size, "real")
    flops_per_item = 2 * count_macs(card.build_model(), single)  # the fp32 forward
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx if onnx is not None else _random_checkpoint(card, Path(tmp))
        for dtype_name in _dtypes(runtime, dtypes, onnx):
            dtype = compute_dtype(dtype_name)
            run = load_runtime(card, source, runtime, dtype, threads)
            latency = latency_stats(time_runtime(run, single.numpy(), steps, warmup), 1)
            throughput = latency_stats(time_runtime(run, many.numpy(), max(2, steps // 3), 1), batch_size)
            ran = run.describe().split()[-1]  # what the runtime ran (auto may pick fp32 onnxruntime under bf16 amp)
            peak = peak_flops(compute_dtype(ran), torch.device("cpu"))["peak"]
            rows.append(
                {
                    "model": card.model,
                    "runtime": run.name if runtime != "auto" else f"auto: {run.name}",
                    "dtype": ran,
                    "input": "x".join(str(d) for d in card.input_shape),
                    "ms_per_item_b1_median": latency["ms_per_item_median"],
                    "ms_per_item_b1_p90": latency["ms_per_item_p90"],
                    "batch_size": batch_size,
                    "items_per_sec": throughput["items_per_sec"],
                    "gflops_per_item": flops_per_item / 1e9,
                    "mfu": flops_per_item * throughput["items_per_sec"] / peak,
                    "threads": threads,
                }
            )
    return rows


def bench_recipe_inference(
    recipe: Recipe,
    runtime: str = "torch",
    steps: int = 10,
    warmup: int = 2,
    batch_size: int | None = None,
    onnx: Path | None = None,
) -> list[dict[str, Any]]:
    """`visionzoo bench RECIPE --runtime ... [--onnx FILE]`: batch-1 latency and throughput at the recipe's
    batch size (`-b`); torch and compiled in fp32 and bf16 autocast, OpenVINO in fp32 and bf16, onnxruntime on
    the fp32 export or the given file (its card, not the recipe's, describes the model)."""
    card = read_onnx_card(onnx) if onnx is not None else card_from_recipe(recipe)
    return bench_inference(card, runtime, batch_size or recipe.batch_size, steps, warmup, onnx=onnx)


def format_inference_bench(rows: list[dict[str, Any]], as_json: bool = False) -> str:
    if as_json:
        return json.dumps(rows)
    return "\n".join(
        f"{r['model']} {r['runtime']} {r['dtype']} input {r['input']}, {r['threads']} threads: batch 1 "
        f"{r['ms_per_item_b1_median']:.2f} ms/item (p90 {r['ms_per_item_b1_p90']:.2f}); batch {r['batch_size']} "
        f"{r['items_per_sec']:.1f} items/s, MFU {100 * r['mfu']:.1f} %"
        for r in rows
    )
