"""One training loop for every task: device, precision, DDP, schedule, checkpoints, resume, metrics.

It never imports a model or a dataset by name; the task says what a batch means. Read `train` first: set up,
then per epoch `train_one_epoch`, `end_epoch` (evaluate, checkpoint, log), then the summary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from visionzoo import files
from visionzoo.data.sampling import TrainSampler, make_loader, report_worker_deaths_where_waited
from visionzoo.engine import checkpoint, distributed
from visionzoo.engine.distributed import DistInfo
from visionzoo.engine.evaluate import eval_loader, evaluate
from visionzoo.engine.hardware import machine
from visionzoo.engine.optim import ModelEMA, build_optimizer, effective_lr, lr_at, optimizer_step
from visionzoo.engine.precision import Precision, autocast, compiled, grad_scaler, resolve_amp
from visionzoo.engine.progress import EpochProgress, MetricsWriter
from visionzoo.engine.rng import capture_rng, restore_rng, seed_everything
from visionzoo.engine.run_dir import RunOptions, agree_on_run
from visionzoo.engine.train_state import TrainState
from visionzoo.errors import VisionZooError
from visionzoo.models.weights import load_checkpoint
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task
from visionzoo.tasks.base import Batch, Task, batch_size_of

logger = logging.getLogger(__name__)

__all__ = ["RunOptions", "train"]


@dataclass
class Training:
    """Everything one run trains with, built once by `_set_up`."""

    recipe: Recipe
    info: DistInfo
    task: Task
    model: nn.Module  # the module whose weights are saved
    trained: nn.Module  # what the steps call: the model, or its DDP wrapper, compiled with --compile
    evaluated: nn.Module  # what evaluation calls: the model or its EMA, compiled with --compile
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    ema: ModelEMA | None
    sampler: TrainSampler
    loader: DataLoader
    eval_loader: DataLoader
    steps_per_epoch: int
    base_lr: float
    run_dir: Path
    config: dict[str, Any]  # written to config.yaml and into every state file

    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluation reports and best/last.safetensors hold: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model


class Preempted(BaseException):
    """SIGTERM arrived where the process was waiting without changing the training state (see `_StopRequest`).

    Not an Exception, as KeyboardInterrupt is not: code that survives any error (a dataset skipping a bad file)
    must not swallow it."""


class _StopRequest:
    """SIGTERM (a preempted job) asks the run to save its state and exit.

    The request is honoured before the next step, and at once inside a `waiting` section (waiting for a batch,
    evaluating), where nothing changes the training state: there the handler raises `Preempted`, so a loader
    worker that never answers cannot hold the run.
    """

    def __init__(self) -> None:
        self.requested, self._waiting = False, False
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread
            self.previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._waiting:
            self._waiting = False
            raise Preempted

    @contextlib.contextmanager
    def waiting(self, enabled: bool = True) -> Iterator[None]:
        """A section that SIGTERM may cut short with `Preempted` (when `enabled`)."""
        if enabled and self.requested:
            raise Preempted
        self._waiting = enabled
        try:
            yield
        finally:
            self._waiting = False

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def train(recipe: Recipe, options: RunOptions) -> dict[str, Any]:
    """Train `recipe`; returns the summary (also written to summary.json). Rank 0 alone writes files."""
    info = distributed.setup(recipe.device)
    try:
        t, state = _set_up(recipe, options, info)
        writer = MetricsWriter(t.run_dir) if info.is_main else None
        if writer is not None:
            writer.rewrite(state.history)
        stop, run_start = _StopRequest(), time.monotonic()
        try:
            for epoch in range(state.epoch, recipe.epochs):
                if not train_one_epoch(t, state, epoch, stop):
                    return {"interrupted": True, "run_dir": str(t.run_dir)}
                try:
                    end_epoch(t, state, epoch, writer, stop)
                except Preempted:  # during evaluation, before the epoch's record changed anything
                    _stop(t, state, epoch)
                    return {"interrupted": True, "run_dir": str(t.run_dir)}
        except RuntimeError as err:  # a loader worker of the evaluation died
            if "DataLoader worker" not in str(err):
                raise
            raise VisionZooError(
                f"a data loader worker died ({str(err).splitlines()[0].strip()}); the last saved state in "
                f"{t.run_dir} is intact: continue with --resume auto --output {t.run_dir}"
            ) from None
        finally:
            stop.restore()
            if writer is not None:
                writer.close()
        summary = _summary(recipe, state, time.monotonic() - run_start, info)
        if info.is_main:
            files.write_json(t.run_dir / "summary.json", summary)
            print(_final_block(summary, t.task), flush=True)
        distributed.barrier(info)
        return summary | {"run_dir": str(t.run_dir)}
    finally:
        distributed.cleanup()


def _set_up(recipe: Recipe, options: RunOptions, info: DistInfo) -> tuple[Training, TrainState]:
    """Model, data, optimizer and run directory; the saved state restored when resuming."""
    if recipe.sync_bn and info.enabled and info.device.type != "cuda":
        raise VisionZooError("--sync-bn: PyTorch's SyncBatchNorm runs on CUDA devices only; on CPU train without it")
    task = make_task(recipe)
    seed_everything(recipe.seed + info.rank)
    model = task.build_model()
    run_dir, saved = agree_on_run(recipe, options, info, model)
    precision = resolve_amp(recipe.amp, info.device, recipe.seed_amp)
    kept = (saved or {}).get("config", {}).get("amp_resolved") if recipe.amp == "auto" else None
    if kept in ("off", "bf16", "fp16") and kept != precision.resolved:  # a resumed run goes on as it started
        why = f"kept from the run being resumed (here auto would take {precision.resolved})"
        precision = Precision(recipe.amp, kept, why)
    config = recipe.to_dict() | {"amp_resolved": precision.resolved}  # the request and what it became
    recipe = recipe.replace(amp=precision.resolved)
    if options.finetune is not None and saved is None:
        dropped = load_checkpoint(model, options.finetune, adapt_classifier=True)
        if info.is_main:
            loaded = f"all but the classifier ({', '.join(dropped)})" if dropped else "all layers loaded"
            logger.info("finetune: weights from %s; %s", options.finetune, loaded)
    model.to(info.device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    if recipe.sync_bn and info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    train_set, val_set = task.build_datasets()
    fitting = len(train_set) // info.world_size  # small data keeps the defaults: one batch of all it has
    if 0 < fitting < recipe.batch_size:
        if info.is_main:
            logger.info("-b/--batch-size %d: the training set has %d samples; training at batch %d",
                        recipe.batch_size, len(train_set), fitting)  # fmt: skip
        recipe = recipe.replace(batch_size=fitting)
    sampler = TrainSampler(len(train_set), recipe.batch_size, recipe.seed, info.rank, info.world_size)
    steps_per_epoch = sampler.batches_per_epoch()
    if steps_per_epoch == 0:
        raise VisionZooError(
            f"-b/--batch-size {recipe.batch_size}: the training set has {len(train_set)} samples, "
            f"fewer than one per process ({info.world_size})"
        )
    pin = info.device.type == "cuda"
    loader = make_loader(train_set, sampler, recipe.batch_size, recipe.workers, task.collate, pin)
    base_lr = effective_lr(recipe, info.world_size)
    optimizer = build_optimizer(model, recipe, base_lr)
    scaler = grad_scaler(recipe.amp, info.device)
    # DDP broadcasts rank 0's weights when it wraps the model; the EMA copies them after that, on every rank.
    trained = compiled(distributed.wrap_ddp(model, info) if info.enabled else model, recipe.compile)
    ema = ModelEMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    evaluated = compiled(ema.module if ema is not None else model, recipe.compile)
    config |= task.data_info() | {
        "world_size": info.world_size,
        "global_batch_size": recipe.batch_size * info.world_size,
        "lr_effective": base_lr,
        "torchelastic_run_id": distributed.elastic_run_id(),
        "torch_version": str(torch.__version__),
        "machine": machine().describe(),
    }
    t = Training(recipe, info, task, model, trained, evaluated, optimizer, scaler, ema, sampler, loader,
                 eval_loader(task, val_set, recipe, info), steps_per_epoch, base_lr, run_dir, config)  # fmt: skip
    state = TrainState()
    if saved is not None:
        _restore(t, state, saved)
    if info.is_main:
        files.write_yaml(run_dir / "config.yaml", config)
        logger.info("%s", precision.describe())
        logger.info(
            "%s: %d train / %d val samples, %d steps/epoch, global batch %d, lr %g, %s, %s, %d process(es) -> %s",
            recipe.name, len(train_set), len(val_set), steps_per_epoch, config["global_batch_size"], base_lr,
            info.device, recipe.amp, info.world_size, run_dir,
        )  # fmt: skip
    return t, state


def _restore(t: Training, state: TrainState, saved: dict[str, Any]) -> None:
    t.model.load_state_dict(saved["model"])
    t.optimizer.load_state_dict(saved["optimizer"])
    if t.scaler is not None and saved["scaler"] is not None:
        t.scaler.load_state_dict(saved["scaler"])
    if t.ema is not None and saved["ema"] is not None:
        t.ema.module.load_state_dict(saved["ema"])
    restore_rng(saved["rng"][min(t.info.rank, len(saved["rng"]) - 1)])
    state.load_state_dict(saved)
    if not t.info.is_main:  # the saved partial-epoch sums are those of all ranks; rank 0 carries them on
        state.epoch_sums, state.epoch_samples = {}, 0
    if t.info.is_main:
        logger.info(
            "resumed %s at epoch %d, step %d of %d", t.run_dir, state.epoch + 1, state.epoch_step, t.steps_per_epoch
        )


def train_one_epoch(t: Training, state: TrainState, epoch: int, stop: _StopRequest) -> bool:
    """The epoch's remaining steps (all of them unless resuming mid-epoch); False when stopped by SIGTERM."""
    recipe, info = t.recipe, t.info
    t.sampler.set_epoch(epoch, state.epoch_step)
    t.model.train()
    later = (recipe.epochs - epoch - 1) * t.steps_per_epoch  # the ETA covers the epochs still to come
    bar = EpochProgress(t.steps_per_epoch, f"epoch {epoch + 1}/{recipe.epochs}", info.is_main, later_steps=later,
                        done_before=state.epoch_step)  # fmt: skip
    epoch_start, time_before = time.monotonic(), state.epoch_time
    batches = iter(t.loader)
    report_worker_deaths_where_waited()
    while True:
        batch, stopping, failure, empty = _next_batch(batches, info, stop)
        if stopping or failure is not None:
            bar.close()
            _stop(t, state, epoch)
            if failure is not None:
                raise VisionZooError(
                    f"{failure}; the state after epoch {epoch + 1} step {state.epoch_step} is saved: "
                    f"continue with --resume auto --output {t.run_dir}"
                )
            return False
        if batch is None:
            break
        lr = lr_at(recipe, t.base_lr, state.global_step, t.steps_per_epoch)
        shown = {"lr": lr}
        if empty:  # no sample of the batch (on some rank) could be read: a step without an update
            state.epoch_sums["num_empty_batches"] = state.epoch_sums.get("num_empty_batches", 0.0) + 1
        else:
            shown["loss"] = _update(t, state, batch, lr, epoch)
        state.global_step += 1
        state.epoch_step += 1
        state.epoch_time = time_before + time.monotonic() - epoch_start
        speed = state.epoch_samples * info.world_size / max(state.epoch_time, 1e-9)
        bar.update(1, **shown, samples_per_s=speed)
        if recipe.save_every_steps and state.global_step % recipe.save_every_steps == 0:
            save_state(t, state)
    bar.close()
    state.epoch_time = time_before + time.monotonic() - epoch_start
    return True


def _next_batch(
    batches: Iterator[Batch], info: DistInfo, stop: _StopRequest
) -> tuple[Batch | None, bool, str | None, bool]:
    """(the next batch or None at the epoch's end, whether to stop, why the run failed or None, whether a rank's
    batch is empty).

    Waiting for a batch is where SIGTERM stops a run at once, whatever a loader worker is doing, and where a
    dead worker is reported. They reach the ranks at different moments, so one all-reduce makes the ranks agree,
    before the step's collectives; after a failure they save the state of the last step before stopping.
    """
    batch, failure = None, None
    try:
        with stop.waiting():
            batch = next(batches, None)
    except Preempted:
        pass
    except (RuntimeError, EOFError, ConnectionError) as err:  # a loader worker died (killed, out of memory)
        if isinstance(err, RuntimeError) and "DataLoader worker" not in str(err):
            raise
        failure = f"a data loader worker died ({(str(err).strip() or type(err).__name__).splitlines()[0]})"
    empty = batch is not None and batch_size_of(batch) == 0
    flags = torch.tensor([float(stop.requested), float(failure is not None), float(empty)])
    stopping, failed, empty = (distributed.all_reduce_sum(info, flags) > 0).tolist()
    if failed and failure is None:
        failure = "a data loader worker of another rank died"
    return batch, stopping, failure, empty


def _update(t: Training, state: TrainState, batch: Batch, lr: float, epoch: int) -> float:
    """One optimizer step on `batch`, its logs added to the epoch's sums; returns the loss."""
    batch = t.task.to_device(batch, t.info.device, t.recipe.channels_last)
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    with autocast(t.recipe.amp, t.info.device):
        loss, logs = t.task.train_step(t.trained, batch)
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise VisionZooError(
            f"epoch {epoch + 1} step {state.epoch_step + 1}: the loss is {loss_value}; training stopped, "
            f"the last good checkpoint in {t.run_dir} is kept (try a lower --lr)"
        )
    optimizer_step(loss, t.model, t.optimizer, t.scaler, t.recipe.clip_grad, t.ema)
    samples = batch_size_of(batch)
    state.epoch_samples += samples
    for key, value in {"loss": loss_value, **logs}.items():  # counts (num_*) add up, the rest are means
        weighted = float(value) if key.startswith("num_") else float(value) * samples
        state.epoch_sums[key] = state.epoch_sums.get(key, 0.0) + weighted
    return loss_value


def _stop(t: Training, state: TrainState, epoch: int) -> None:
    """Save the state of the last completed step and say how to continue."""
    save_state(t, state)
    if t.info.is_main:
        logger.info(
            "stopped at epoch %d step %d; state saved in %s (continue with --resume auto --output %s)",
            epoch + 1, state.epoch_step, t.run_dir, t.run_dir,
        )  # fmt: skip


def end_epoch(t: Training, state: TrainState, epoch: int, writer: MetricsWriter | None, stop: _StopRequest) -> None:
    """The epoch's record (averages over all ranks, evaluation), the best weights, the checkpoint, the log line.

    Evaluation comes before any change to `state`, so that SIGTERM can cut it short (one process; ranks would
    disagree) and the saved state re-runs it. The weights are written before the state that marks the epoch
    done, so a kill between them re-runs the epoch's end instead of leaving its weights unwritten.
    """
    recipe, info = t.recipe, t.info
    # A rank that resumed with no step left in the epoch has no sums of its own: the keys come from all ranks.
    keys = sorted(set().union(*distributed.gather_objects(info, list(state.epoch_sums))))
    sums = [state.epoch_samples, *(state.epoch_sums.get(k, 0.0) for k in keys)]
    totals = distributed.all_reduce_sum(info, torch.tensor(sums, dtype=torch.float64))
    total_samples = max(1.0, float(totals[0]))
    # The lr of the epoch's last step: step global_step - 1 (steps are counted from 0).
    last_lr = lr_at(recipe, t.base_lr, state.global_step - 1, t.steps_per_epoch)
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": last_lr, "epoch_time_s": round(state.epoch_time, 3)}
    for key, value in zip(keys, totals[1:].tolist(), strict=True):
        record[key if key.startswith("num_") else f"train_{key}"] = (
            value if key.startswith("num_") else value / total_samples
        )
    record["samples_per_sec"] = total_samples / max(state.epoch_time, 1e-9)
    if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
        with stop.waiting(enabled=not info.enabled):
            record.update(evaluate(t.task, t.evaluated, t.eval_loader, info, recipe).metrics)
    state.train_time += state.epoch_time
    improved = state.update_best(record, recipe.main_metric)
    state.history.append(record)
    state.epoch += 1
    state.start_epoch()
    if info.is_main:
        weights = t.eval_model.state_dict()
        meta = {"model": recipe.model, "recipe": recipe.name, "epoch": str(epoch + 1)}
        checkpoint.save_weights(t.run_dir / "last.safetensors", weights, meta)
        if improved:
            checkpoint.save_weights(t.run_dir / "best.safetensors", weights, meta)
    save_state(t, state)
    if info.is_main:
        writer.append(record)
        logger.info("%s", _epoch_line(record))


def save_state(t: Training, state: TrainState) -> None:
    """last.state.pt: all ranks contribute their RNG state and partial-epoch sums; rank 0 writes, the others wait."""
    rngs = distributed.gather_objects(t.info, capture_rng())
    parts = distributed.gather_objects(t.info, (state.epoch_sums, state.epoch_samples))
    if t.info.is_main:
        epoch_sums: dict[str, float] = {}
        for sums, _ in parts:
            for key, value in sums.items():
                epoch_sums[key] = epoch_sums.get(key, 0.0) + value
        saved = state.state_dict() | {"epoch_sums": epoch_sums, "epoch_samples": sum(n for _, n in parts)}
        checkpoint.save_state(
            t.run_dir,
            saved
            | {
                "format": checkpoint.STATE_FORMAT,
                "config": t.config,
                "world_size": t.info.world_size,
                "model": t.model.state_dict(),
                "optimizer": t.optimizer.state_dict(),
                "scaler": t.scaler.state_dict() if t.scaler is not None else None,
                "ema": t.ema.module.state_dict() if t.ema is not None else None,
                "rng": rngs,
            },
        )
    distributed.barrier(t.info)


def _epoch_line(record: dict[str, Any]) -> str:
    shown = {k: v for k, v in record.items() if k != "epoch"}
    return f"epoch {record['epoch']}: " + " ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
    )


def _summary(recipe: Recipe, state: TrainState, wall_s: float, info: DistInfo) -> dict[str, Any]:
    history = state.history
    timed = history[1:] if len(history) > 1 else history  # the first epoch includes warm-up, as the seeds do
    speeds = [r["samples_per_sec"] for r in timed]
    samples_per_sec = sum(speeds) / len(speeds) if speeds else 0.0
    global_batch = recipe.batch_size * info.world_size
    return {
        "recipe": recipe.name,
        "model": recipe.model,
        "epochs": len(history),
        "final": history[-1] if history else {},
        "best": {"metric": recipe.main_metric, "value": state.best_metric, "epoch": state.best_epoch},
        "samples_per_sec": samples_per_sec,
        "sec_per_step": global_batch / samples_per_sec if samples_per_sec else None,
        "train_time_s": state.train_time,
        "duration_s": wall_s,
        "world_size": info.world_size,
        "global_batch_size": global_batch,
    }


def _final_block(summary: dict[str, Any], task: Task) -> str:
    """The seeds' closing block: speed and duration, then the task's own result lines, then the best epoch."""
    best = summary["best"]
    return "\n".join(
        [
            "------------------ Final result ------------------",
            f"Final Performance {task.sample_unit}/sec : {summary['samples_per_sec']:.4f}",
            f"Final Performance sec/step : {summary['sec_per_step'] or 0:.6f}",
            f"E2E Training Duration sec : {summary['duration_s']:.0f}",
            *task.final_lines(summary["final"]),
            f"best {best['metric']} : {best['value']} (epoch {best['epoch']})",
        ]
    )
