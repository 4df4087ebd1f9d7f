"""`visionzoo bench`: the seeds' "performance mode" - steady-state speed on synthetic batches of real shape.

Training and inference in PyTorch (`bench`), and inference of the exported model in a runtime (`--runtime`).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from visionzoo.engine.distributed import resolve_device
from visionzoo.engine.flops import count_flops, count_macs, count_params
from visionzoo.engine.hardware import machine, peak_flops
from visionzoo.engine.optim import ModelEMA, build_optimizer, effective_lr, optimizer_step
from visionzoo.engine.precision import autocast, compiled, compute_dtype, grad_scaler, resolve_amp
from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task

if TYPE_CHECKING:
    from visionzoo.export.model_card import ModelCard

RUNTIMES = ("torch", "onnxruntime")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(recipe: Recipe, mode: str, steps: int = 10, warmup: int = 3) -> dict[str, Any]:
    """Samples/s and ms/step of `steps` timed train or inference steps, after `warmup` untimed ones."""
    device = resolve_device(recipe.device)
    precision = resolve_amp(recipe.amp, device, recipe.seed_amp)
    recipe = recipe.replace(amp=precision.resolved)
    torch.manual_seed(recipe.seed)
    task = make_task(recipe)
    model = task.build_model().to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    batch = task.to_device(task.example_batch(recipe.batch_size), device, recipe.channels_last)
    params = count_params(model)
    macs = count_macs(model, batch[0][:1])
    run = compiled(model, recipe.compile)

    if mode == "train":
        model.train()
        optimizer = build_optimizer(model, recipe, effective_lr(recipe, 1))
        scaler = grad_scaler(recipe.amp, device)
        ema = ModelEMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None

        def forward_backward() -> torch.Tensor:
            with autocast(recipe.amp, device):
                loss, _ = task.train_step(run, batch)
            loss.backward()
            return loss

        def step() -> None:  # the training step as the trainer runs it (clipping, scaler, EMA included)
            with autocast(recipe.amp, device):
                loss, _ = task.train_step(run, batch)
            optimizer_step(loss, model, optimizer, scaler, recipe.clip_grad, ema)

        counted = forward_backward  # forward + backward, as MFU counts a training step
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast(recipe.amp, device):
                run(batch[0])

        counted = step
    first_start = time.perf_counter()
    counted()  # the first call compiles (with --compile) and runs BMN's formulation probe: no step's work
    first_s = time.perf_counter() - first_start
    flops = count_flops(counted)
    model.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    mean_s = sum(times) / len(times)
    samples_per_sec = recipe.batch_size / mean_s
    achieved = flops / recipe.batch_size * samples_per_sec
    peak = peak_flops(compute_dtype(recipe.amp), device)["peak"]
    return {
        "recipe": recipe.name,
        "model": recipe.model,
        "mode": mode,
        "device": str(device),
        "amp": precision.requested,
        "amp_resolved": precision.resolved,
        "amp_reason": precision.reason,
        "channels_last": recipe.channels_last,
        "batch_size": recipe.batch_size,
        "compile": recipe.compile,
        "first_step_s": first_s,
        "samples_per_sec": samples_per_sec,
        "ms_per_step": 1000 * mean_s,
        "ms_per_step_median": 1000 * sorted(times)[len(times) // 2],
        "peak_memory_mb": _peak_memory_mb(device),
        "params": params,
        "gmacs_per_sample": macs / 1e9,
        "gflops_per_step_sample": flops / recipe.batch_size / 1e9,  # train: forward + backward
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak / 1e12,
        "mfu": achieved / peak,
        "threads": torch.get_num_threads(),
        "machine": machine().describe(),
    }


def format_bench(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{result['recipe']} ({result['model']}) {result['mode']} on {result['device']}, "
            f"amp {result['amp']} -> {result['amp_resolved']} ({result['amp_reason']}), "
            f"channels_last {result['channels_last']}, batch {result['batch_size']}, {result['threads']} threads",
            f"samples/s      : {result['samples_per_sec']:.2f}",
            f"ms/step        : {result['ms_per_step']:.2f} (median {result['ms_per_step_median']:.2f})",
            f"peak memory MB : {result['peak_memory_mb']:.0f}",
            f"parameters     : {result['params']:,}",
            f"GMACs/sample   : {result['gmacs_per_sample']:.4f} (forward)",
            f"FLOP/s         : {result['achieved_tflops'] * 1000:.1f} GFLOP/s of a measured peak "
            f"{result['peak_tflops'] * 1000:.1f} = MFU {100 * result['mfu']:.1f} %",
            f"machine        : {result['machine']}",
        ]
    )


def _runtime_for(card: ModelCard, runtime: str, dtype: torch.dtype, onnx_file: Path, threads: int | None):
    from visionzoo.export.onnx import export_onnx
    from visionzoo.export.runtime import OnnxRuntime, TorchRuntime

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
    from visionzoo.export.onnx import example_inputs
    from visionzoo.export.runtime import latency_stats, time_runtime

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
    from visionzoo.export.model_card import card_from_recipe

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
