"""Optimizers, the optimizer step, the learning-rate schedule and the EMA of weights.

The schedule is a pure function of the global step, so resuming needs only the step to be exact.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from visionzoo.recipes.base import Recipe


def effective_lr(recipe: Recipe, world_size: int) -> float:
    """The recipe's lr, scaled linearly by global batch / lr_base_batch when the recipe names a reference batch."""
    if recipe.lr_base_batch <= 0:
        return recipe.lr
    return recipe.lr * recipe.batch_size * world_size / recipe.lr_base_batch


def build_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if recipe.wd_skip_norm_bias and param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    name = recipe.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)  # adamw: the recipe's type allows no other value


def lr_at(recipe: Recipe, base_lr: float, step: int, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the recipe's schedule."""
    epoch = step / max(1, steps_per_epoch)
    if epoch < recipe.warmup_epochs:
        return recipe.warmup_lr + (base_lr - recipe.warmup_lr) * epoch / recipe.warmup_epochs
    whole_epochs = int(epoch)
    if recipe.sched == "constant":
        return base_lr
    if recipe.sched == "step":
        return base_lr * recipe.decay_rate ** (whole_epochs // max(1, recipe.decay_epochs))
    if recipe.sched == "multistep":
        return base_lr * recipe.decay_rate ** sum(whole_epochs >= m for m in recipe.decay_milestones)
    span = recipe.epochs - recipe.warmup_epochs - recipe.cooldown_epochs  # cosine: the one schedule left
    progress = (epoch - recipe.warmup_epochs) / span if span > 0 else 1.0
    if progress >= 1.0:
        return recipe.min_lr
    return recipe.min_lr + 0.5 * (base_lr - recipe.min_lr) * (1.0 + math.cos(math.pi * progress))


def optimizer_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad: float | None = None,
    ema: ModelEMA | None = None,
) -> None:
    """Backward, gradient clipping (of unscaled gradients under fp16), step, scaler update, EMA.

    The one step that training runs and `bench` times.
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if ema is not None:
        ema.update(model)


class ModelEMA:
    """Exponential moving average of the weights (buffers are copied), evaluated in place of the raw model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_value, value in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if ema_value.dtype.is_floating_point:
                ema_value.lerp_(value, 1.0 - self.decay)
            else:
                ema_value.copy_(value)
