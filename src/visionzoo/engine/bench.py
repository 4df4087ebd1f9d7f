"""`visionzoo bench`: the seeds' "performance mode" - steady-state speed on synthetic batches of real shape."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import torch

from visionzoo.engine.distributed import resolve_device
from visionzoo.engine.flops import count_macs, count_params
from visionzoo.engine.optim import ModelEMA, build_optimizer, effective_lr, optimizer_step
from visionzoo.engine.precision import autocast, check_amp, grad_scaler
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
    check_amp(recipe.amp, device)
    torch.manual_seed(recipe.seed)
    task = make_task(recipe)
    model = task.build_model().to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    batch = task.to_device(task.example_batch(recipe.batch_size), device, recipe.channels_last)
    params = count_params(model)
    macs = count_macs(model, batch[0][:1])

    if mode == "train":
        model.train()
        optimizer = build_optimizer(model, recipe, effective_lr(recipe, 1))
        scaler = grad_scaler(recipe.amp, device)
        ema = ModelEMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None

        def step() -> None:  # the training step as the trainer runs it (clipping, scaler, EMA included)
            with autocast(recipe.amp, device):
                loss, _ = task.train_step(model, batch)
            optimizer_step(loss, model, optimizer, scaler, recipe.clip_grad, ema)
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast(recipe.amp, device):
                model(batch[0])

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
    return {
        "recipe": recipe.name,
        "model": recipe.model,
        "mode": mode,
        "device": str(device),
        "amp": recipe.amp,
        "channels_last": recipe.channels_last,
        "batch_size": recipe.batch_size,
        "samples_per_sec": recipe.batch_size / mean_s,
        "ms_per_step": 1000 * mean_s,
        "ms_per_step_median": 1000 * sorted(times)[len(times) // 2],
        "peak_memory_mb": _peak_memory_mb(device),
        "params": params,
        "gmacs_per_sample": macs / 1e9,
        "threads": torch.get_num_threads(),
    }


def format_bench(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{result['recipe']} ({result['model']}) {result['mode']} on {result['device']}, amp {result['amp']}, "
            f"channels_last {result['channels_last']}, batch {result['batch_size']}, {result['threads']} threads",
            f"samples/s      : {result['samples_per_sec']:.2f}",
            f"ms/step        : {result['ms_per_step']:.2f} (median {result['ms_per_step_median']:.2f})",
            f"peak memory MB : {result['peak_memory_mb']:.0f}",
            f"parameters     : {result['params']:,}",
            f"GMACs/sample   : {result['gmacs_per_sample']:.4f}",
        ]
    )
