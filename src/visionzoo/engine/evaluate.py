"""Evaluation: one pass over a validation loader (used after each training epoch) and `visionzoo eval`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from visionzoo.data.sampling import EvalSampler, make_loader
from visionzoo.engine import distributed
from visionzoo.engine.distributed import DistInfo
from visionzoo.engine.precision import autocast, compiled, resolve_amp
from visionzoo.files import remove_stale_temporaries
from visionzoo.models.weights import load_checkpoint
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task
from visionzoo.tasks.base import EvalResult, Task

logger = logging.getLogger(__name__)


def eval_loader(task: Task, dataset: Any, recipe: Recipe, info: DistInfo) -> DataLoader:
    """Each validation item exactly once over all ranks."""
    sampler = EvalSampler(len(dataset), info.rank, info.world_size)
    batch_size = recipe.eval_batch_size or recipe.batch_size
    return make_loader(dataset, sampler, batch_size, recipe.workers, task.collate, info.device.type == "cuda")


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, loader: DataLoader, info: DistInfo, recipe: Recipe) -> EvalResult:
    """The task's metrics over the whole loader, merged over ranks; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    task.eval_begin()
    with autocast(recipe.amp, info.device):
        for batch in loader:
            task.eval_step(model, task.to_device(batch, info.device, recipe.channels_last))
    model.train(was_training)
    return task.eval_end(lambda obj: distributed.gather_objects(info, obj))


def evaluate_checkpoint(
    recipe: Recipe, checkpoint: Path, output: Path | None = None, runtime_model: nn.Module | None = None
) -> dict[str, Any]:
    """`visionzoo eval`: a checkpoint's metrics on the recipe's validation set, and the task's output files.

    `runtime_model` is the checkpoint already loaded in another runtime (onnxruntime, OpenVINO, compiled:
    made above the engine, by the command); the task sees it as a module either way."""
    info = distributed.setup(recipe.device)
    try:
        if info.is_main:
            remove_stale_temporaries(checkpoint.parent)
        precision = resolve_amp(recipe.amp, info.device, recipe.seed_amp)
        recipe = recipe.replace(amp=precision.resolved)
        task = make_task(recipe)
        model = runtime_model if runtime_model is not None else _load_model(task, checkpoint, info, recipe)
        _, val_set = task.build_datasets()
        if info.is_main:
            logger.info("%s", precision.describe())
        loader = eval_loader(task, val_set, recipe, info)
        result = evaluate(task, model, loader, info, recipe)
        written = task.write_eval_outputs(result, output or checkpoint.parent) if info.is_main else {}
        return result.metrics | written
    finally:
        distributed.cleanup()


def _load_model(task: Task, checkpoint: Path, info: DistInfo, recipe: Recipe) -> nn.Module:
    model = task.build_model()
    load_checkpoint(model, checkpoint)
    model.to(info.device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    return compiled(model, recipe.compile)
