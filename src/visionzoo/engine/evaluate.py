"""`visionzoo eval`: a checkpoint's metrics on the recipe's validation set, through the training engine's code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionzoo.data.sampling import EvalSampler
from visionzoo.engine import distributed
from visionzoo.engine.precision import check_amp
from visionzoo.engine.trainer import evaluate, make_loader
from visionzoo.models.weights import load_checkpoint
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task


def evaluate_checkpoint(recipe: Recipe, checkpoint: Path, output: Path | None = None) -> dict[str, Any]:
    info = distributed.setup(recipe.device)
    try:
        check_amp(recipe.amp, info.device)
        task = make_task(recipe)
        model = task.build_model()
        load_checkpoint(model, checkpoint)
        model.to(info.device)
        if recipe.channels_last:
            model.to(memory_format=torch.channels_last)
        _, val_set = task.build_datasets()
        sampler = EvalSampler(len(val_set), info.rank, info.world_size)
        loader = make_loader(
            task, val_set, sampler, recipe.eval_batch_size or recipe.batch_size, recipe.workers, info.device
        )
        metrics = evaluate(task, model, loader, info, recipe)
        write_outputs = getattr(task, "write_eval_outputs", None)
        if write_outputs is not None and info.is_main:
            metrics |= write_outputs(output or checkpoint.parent)
        return metrics
    finally:
        distributed.cleanup()
