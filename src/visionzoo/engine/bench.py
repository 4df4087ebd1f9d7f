"""`visionzoo bench`: the seeds' "performance mode" - steady-state speed on synthetic batches of real shape.

Training and inference in PyTorch (`bench`); inference of the exported model in a runtime (`--runtime`) is
measured beside the runtimes, in `export/inference_bench.py`.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import torch

from visionzoo.engine.distributed import resolve_device
from visionzoo.engine.flops import count_flops, count_macs, count_params
from visionzoo.engine.hardware import machine, peak_flops
from visionzoo.engine.optim import ModelEMA, build_optimizer, effective_lr, optimizer_step
from visionzoo.engine.precision import autocast, compiled, compute_dtype, grad_scaler, resolve_amp
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task


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
