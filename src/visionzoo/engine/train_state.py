"""Where a run stands: its counters, history and the partial sums of the epoch in progress.

Saved flat into `last.state.pt` next to the weights, optimizer and RNG states, so a resume (also in the middle
of an epoch) continues the counters, the schedule and the epoch's averages exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    epoch_step: int = 0  # steps completed in the epoch in progress
    global_step: int = 0  # optimizer steps completed in the whole run
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per completed epoch
    best_metric: float | None = None
    best_epoch: int | None = None
    train_time: float = 0.0  # seconds spent in completed epochs
    # the epoch in progress: this rank's sums of the logged values (x samples), samples and seconds so far
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_samples: int = 0
    epoch_time: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, state[item.name])

    def start_epoch(self) -> None:
        self.epoch_step, self.epoch_sums, self.epoch_samples, self.epoch_time = 0, {}, 0, 0.0

    def update_best(self, record: dict[str, Any], metric: str) -> bool:
        """Whether `record` holds a new best value of `metric` (higher is better)."""
        value = record.get(metric)
        if value is None or (self.best_metric is not None and value <= self.best_metric):
            return False
        self.best_metric, self.best_epoch = value, record["epoch"]
        return True
