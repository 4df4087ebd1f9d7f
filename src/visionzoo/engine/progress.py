"""What a person sees and what scripts read: messages, a progress bar (or plain lines), metrics.jsonl, TensorBoard.

Every module logs through `logging.getLogger(__name__)` (under "visionzoo"); the CLI installs one handler that
writes the messages to stderr between progress-bar updates, warnings marked as such.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, JsonValue
from tqdm import tqdm

from visionzoo.files import (
    OpenSchema,
    append_text,
    decode_text,
    parse_json,
    read_bytes,
    read_json,
    validate,
    write_text,
)

logger = logging.getLogger(__name__)


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        prefix = "" if record.levelno < logging.WARNING else f"visionzoo: {record.levelname.lower()}: "
        tqdm.write(prefix + record.getMessage(), file=sys.stderr)  # sys.stderr now, as tests capture it


def setup_logging(level: int = logging.INFO) -> None:
    """Show the package's messages on stderr (once per process, for the CLI; a library user configures logging)."""
    package = logging.getLogger("visionzoo")
    if not any(isinstance(handler, _ConsoleHandler) for handler in package.handlers):
        package.addHandler(_ConsoleHandler())
    package.setLevel(level)


class EpochProgress:
    """tqdm bar on a terminal; otherwise a plain line every `every_s` seconds and at the end.

    Its ETA covers the whole run: the steps left in this bar and `later_steps` (the epochs still to come), at the
    pace of the steps this process has run (`done_before`, steps finished before a resume, are not timed)."""

    def __init__(
        self, total: int, description: str, enabled: bool, every_s: float = 15.0, later_steps: int = 0,
        done_before: int = 0,
    ) -> None:  # fmt: skip
        self.total, self.description, self.enabled, self.later_steps = total, description, enabled, later_steps
        self.tty = enabled and sys.stderr.isatty()
        self.bar = (
            tqdm(total=total, initial=done_before, desc=description, dynamic_ncols=True, leave=False)
            if self.tty
            else None
        )
        self.every_s, self.last_print, self.done, self.timed = every_s, time.monotonic(), done_before, 0
        self.start = time.monotonic()

    def eta_s(self) -> float:
        """Seconds left in the whole run at the pace so far."""
        per_step = (time.monotonic() - self.start) / max(1, self.timed)
        return per_step * (self.total - self.done + self.later_steps)

    def update(self, steps: int, **fields: float) -> None:
        self.done += steps
        self.timed += steps
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in fields.items()}
            if self.later_steps:
                shown["run_eta"] = f"{self.eta_s() / 60:.1f}min"
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(steps)
        elif self.enabled and (time.monotonic() - self.last_print >= self.every_s or self.done == self.total):
            self.last_print = time.monotonic()
            shown = " ".join(f"{k} {v:.4g}" for k, v in fields.items())
            logger.info("%s step %d/%d %s eta %.0fs", self.description, self.done, self.total, shown, self.eta_s())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------------- schemas
# What `report` and model cards read of a run's summary.json and metrics.jsonl; other keys are kept as they are.
MAX_RUN_FILE_BYTES = 64 << 20  # a metrics.jsonl of 100,000 epochs is ~50 MB
Count = Annotated[int, Field(ge=0)]
Number = Annotated[float, Field(allow_inf_nan=True)]  # a run's metrics may be NaN (a diverged loss)


class Best(OpenSchema):
    metric: str | None = None
    value: Number | None = None
    epoch: Count | None = None


class Summary(OpenSchema):
    """summary.json, as `engine.trainer` writes it at the end of a run."""

    best: Best = Best()
    final: dict[str, JsonValue] = {}
    epochs: Count | None = None
    samples_per_sec: Number | None = None
    world_size: Annotated[int, Field(ge=1)] | None = None


class EpochRecord(OpenSchema):
    """One line of metrics.jsonl: an epoch's means and evaluation."""

    epoch: Count


def read_summary(path: Path) -> Summary:
    return read_json(path, "run summary", Summary, MAX_RUN_FILE_BYTES)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl: one epoch record per line, each checked (a torn last line, a number, bytes not UTF-8:
    one error naming the line)."""
    text = decode_text(read_bytes(path, "metrics log", MAX_RUN_FILE_BYTES), path, "metrics log")
    return [
        validate(
            EpochRecord, parse_json(line, f"{path}: line {number}", "record"), f"{path}: line {number}", "record"
        ).model_dump()
        for number, line in enumerate(text.splitlines(), start=1)
    ]


class MetricsWriter:
    """metrics.jsonl (one object per epoch) and, when tensorboard is installed, event files."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            self.tensorboard = None

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Make metrics.jsonl hold exactly `history` (after a resume: no duplicate or orphan epochs)."""
        write_text(self.path, "".join(json.dumps(record) + "\n" for record in history))

    def append(self, record: dict[str, Any]) -> None:
        append_text(self.path, json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "epoch":
                    self.tensorboard.add_scalar(key, value, record["epoch"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
