"""The interface between the task-agnostic engine and what is learned.

A task is the only place that knows what a batch means. Batches are tuples whose first element is the
input tensor (its first dimension is the batch size); the rest is whatever the task's loss needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from visionzoo.recipes.base import Recipe

Batch = tuple[Any, ...]


@dataclass
class EvalResult:
    """What an evaluation pass found: the metrics, and what only `write_eval_outputs` needs (proposals, curves)."""

    metrics: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Metrics go into the training state, which loads with weights_only=True: numpy scalars would not.
        self.metrics = {key: plain(value) for key, value in self.metrics.items()}


def plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (a metric computed with numpy); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


class Gather(Protocol):
    """Collects per-rank Python objects on every rank (identity when not distributed)."""

    def __call__(self, obj: Any) -> list[Any]: ...


class Task(Protocol):
    """Logs returned by train_step are per-batch means, except keys starting with `num_`, which are counts."""

    recipe: Recipe
    sample_unit: str  # what one sample is, for speeds shown to people: "images", "videos"

    def build_model(self) -> nn.Module:
        """The recipe's model, with `recipe.pretrained` loaded when set."""

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """(train, val). Items are fetched with keys (index, epoch); see `visionzoo.data.sampling`."""

    def data_info(self) -> dict[str, Any]:
        """What the data says about itself (BMN: how its features were made), recorded in the run's config.yaml
        after `build_datasets`; empty when nothing."""

    def collate(self, samples: list[Any]) -> Batch:
        """Stack samples into a batch (on the CPU, in loader workers)."""

    def to_device(self, batch: Batch, device: torch.device, channels_last: bool) -> Batch:
        """Move a batch to the device (and normalise images there, where that is cheaper)."""

    def train_step(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward and loss under the engine's autocast; returns (loss, detached extra terms to log)."""

    def eval_begin(self) -> None:
        """Reset the accumulators of an evaluation pass."""

    def eval_step(self, model: nn.Module, batch: Batch) -> None:
        """Accumulate one batch of an evaluation pass (model in eval mode, no grad)."""

    def eval_end(self, gather: Gather) -> EvalResult:
        """Metrics over the whole evaluation set; `gather` merges the ranks' accumulators."""

    def write_eval_outputs(self, result: EvalResult, directory: Path) -> dict[str, str]:
        """Files of an evaluation beside its checkpoint (`visionzoo eval`); their paths by name."""

    def final_lines(self, final: dict[str, Any]) -> list[str]:
        """The result lines of the seeds' closing block, from the last epoch's record."""

    def example_batch(self, batch_size: int) -> Batch:
        """A synthetic CPU batch of the real shapes, for `bench` and export."""


def batch_size_of(batch: Batch) -> int:
    return int(batch[0].shape[0])
