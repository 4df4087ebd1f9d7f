"""One training loop for every task: device, precision, DDP, schedule, checkpoints, resume, metrics.

It never imports a model or a dataset by name; the task says what a batch means.
"""

from __future__ import annotations

import datetime
import logging
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader, Dataset

from visionzoo.data.sampling import EvalSampler, TrainSampler
from visionzoo.engine import checkpoint, distributed
from visionzoo.engine.distributed import DistInfo
from visionzoo.engine.optim import ModelEMA, build_optimizer, effective_lr, lr_at
from visionzoo.engine.precision import autocast, check_amp, grad_scaler
from visionzoo.engine.progress import EpochProgress, MetricsWriter
from visionzoo.errors import VisionZooError
from visionzoo.models.weights import load_checkpoint
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task
from visionzoo.tasks.base import Task, batch_size_of

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    output: Path | None = None
    resume: str | None = None  # None, "auto", or a run directory / state file
    finetune: Path | None = None
    interrupt_after_steps: int | None = None  # stop as if preempted after this many steps of this process (tests)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader(task: Task, dataset: Dataset, sampler: Any, batch_size: int, workers: int, device: torch.device):
    """The loader draws its worker seeds from a generator of its own, leaving the global RNG (dropout) alone."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=task.collate,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),
    )


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, loader: DataLoader, info: DistInfo, recipe: Recipe) -> dict[str, float]:
    was_training = model.training
    model.eval()
    task.eval_begin()
    with autocast(recipe.amp, info.device):
        for batch in loader:
            task.eval_step(model, task.to_device(batch, info.device, recipe.channels_last))
    model.train(was_training)
    return task.eval_end(lambda obj: distributed.gather_objects(info, obj))


def _has_state(run_dir: Path) -> bool:
    # prev.state.pt alone is a run killed between the two renames of a save
    return any((run_dir / name).is_file() for name in (checkpoint.STATE_NAME, checkpoint.PREVIOUS_STATE_NAME))


def _newest_run(recipe: Recipe, pattern: str = "*", with_state: bool = False) -> Path | None:
    """The newest run directory of `recipe` (names start with a timestamp) matching `pattern`."""
    candidates = sorted(
        path
        for path in Path("runs", recipe.name).glob(pattern)
        if path.is_dir() and (_has_state(path) or not with_state)
    )
    return candidates[-1] if candidates else None


def _run_id_of(run_dir: Path) -> str | None:
    """The torchrun job that last trained in `run_dir` (recorded in its config.yaml)."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config.get("torchelastic_run_id") if isinstance(config, dict) else None


def _resolve_run_dir(recipe: Recipe, options: RunOptions) -> tuple[Path, Path | None]:
    """(run directory, state file or directory to resume from). Rank 0 decides; see docs/distributed.md.

    torchrun restarts failed workers with the same arguments, so a restart (TORCHELASTIC_RESTART_COUNT > 0)
    continues its job's own run as `--resume auto` would: the `--output` directory when this job (rendezvous
    id) trained there, else the default directory named after the job. A directory of another job still needs
    an explicit `--resume auto`.
    """
    run_id, restarted = distributed.elastic_run_id(), distributed.restart_count() > 0
    if options.resume not in (None, "auto"):
        source = Path(options.resume)
        if not source.exists():
            raise VisionZooError(f"--resume {source}: no such run directory or state file")
        run_dir = options.output or (source if source.is_dir() else source.parent)
        return run_dir, source
    if options.output is not None:
        has_state = _has_state(options.output)
        ours = restarted and (run_id is None or _run_id_of(options.output) == run_id)
        if has_state and options.resume is None and not ours:
            raise VisionZooError(
                f"{options.output}: already holds a run ({checkpoint.STATE_NAME}); "
                "continue it with --resume auto or choose another --output"
            )
        return options.output, options.output if has_state else None
    if restarted and run_id is not None and (own := _newest_run(recipe, f"*-{run_id}")) is not None:
        return own, own if _has_state(own) else None
    if (options.resume == "auto" or (restarted and run_id is None)) and (
        latest := _newest_run(recipe, with_state=True)
    ) is not None:
        return latest, latest
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs", recipe.name, f"{stamp}-{run_id}" if run_id else stamp), None


def _prepare_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise VisionZooError(f"--output {run_dir}: cannot write there ({err.strerror or err})") from None


def _read_resume_state(source: Path, recipe: Recipe, world_size: int, model: nn.Module) -> tuple[Path, dict[str, Any]]:
    """(state file, state) to resume from; a run directory's unusable last state falls back to the previous one."""

    def check(state: dict[str, Any], path: Path) -> None:
        _check_compatible(state, recipe, world_size, model, path)

    if source.is_dir():
        found = checkpoint.load_latest_state(source, check)
        if found is None:
            raise VisionZooError(f"{source}: no {checkpoint.STATE_NAME} to resume from")
        return found
    state = checkpoint.load_state(source)
    check(state, source)
    return source, state


def _check_compatible(state: dict[str, Any], recipe: Recipe, world_size: int, model: nn.Module, source: Path) -> None:
    saved = state["config"]
    if saved["model"] != recipe.model:
        raise VisionZooError(f"{source}: a run of model {saved['model']!r}, not {recipe.model!r}")
    saved_global = saved["batch_size"] * state["world_size"]
    if saved_global != recipe.batch_size * world_size:
        raise VisionZooError(
            f"{source}: trained with a global batch of {saved_global}, this run has "
            f"{recipe.batch_size * world_size}; resume with the same batch size x processes"
        )
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state["model"].items()}
    if found != expected:
        key = next(k for k in sorted(expected.keys() | found.keys()) if expected.get(k) != found.get(k))
        raise VisionZooError(
            f"{source}: its weights do not fit this {recipe.model} ({key}: saved {found.get(key)}, "
            f"model {expected.get(key)})"
        )


def _agree_on_run(
    recipe: Recipe, options: RunOptions, info: DistInfo, model: nn.Module
) -> tuple[Path, dict[str, Any] | None]:
    """Rank 0 picks the run directory and the state to resume from; every rank gets its answer, or its error."""
    decision: tuple[Path | None, Path | None, str | None] = (None, None, None)
    state = None
    if info.is_main:
        try:
            run_dir, source = _resolve_run_dir(recipe, options)
            state_path = None
            if source is not None:
                state_path, state = _read_resume_state(source, recipe, info.world_size, model)
            _prepare_run_dir(run_dir)
            decision = (run_dir, state_path, None)
        except VisionZooError as err:
            decision = (None, None, str(err))
    run_dir, state_path, error = distributed.broadcast_object(info, decision)
    if error is not None:
        raise VisionZooError(error)
    if state_path is not None and not info.is_main:
        state = checkpoint.load_state(state_path)
    return run_dir, state


class _StopRequest:
    """SIGTERM (a preempted job) asks the loop to save a checkpoint at the next step and exit."""

    def __init__(self) -> None:
        self.requested = False
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread
            self.previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def train(recipe: Recipe, options: RunOptions) -> dict[str, Any]:
    """Train `recipe`; returns the summary (also written to summary.json). Rank 0 alone writes files."""
    info = distributed.setup(recipe.device)
    try:
        return _train(recipe, options, info)
    finally:
        distributed.cleanup()


def _train(recipe: Recipe, options: RunOptions, info: DistInfo) -> dict[str, Any]:
    check_amp(recipe.amp, info.device)
    if recipe.sync_bn and info.enabled and info.device.type != "cuda":
        raise VisionZooError("--sync-bn: PyTorch's SyncBatchNorm runs on CUDA devices only; on CPU train without it")
    task = make_task(recipe)
    seed_everything(recipe.seed + info.rank)
    model = task.build_model()
    run_dir, state = _agree_on_run(recipe, options, info, model)
    if options.finetune is not None and state is None:
        dropped = load_checkpoint(model, options.finetune, adapt_classifier=True)
        if info.is_main:
            message = f"all but the classifier ({', '.join(dropped)})" if dropped else "all layers loaded"
            logger.info(f"finetune: weights from {options.finetune}; {message}")
    model.to(info.device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    if recipe.sync_bn and info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    train_set, val_set = task.build_datasets()
    sampler = TrainSampler(len(train_set), recipe.batch_size, recipe.seed, info.rank, info.world_size)
    steps_per_epoch = sampler.batches_per_epoch()
    if steps_per_epoch == 0:
        raise VisionZooError(
            f"--batch-size {recipe.batch_size}: the training set has {len(train_set)} samples, "
            f"fewer than one global batch of {recipe.batch_size * info.world_size}"
        )
    loader = make_loader(task, train_set, sampler, recipe.batch_size, recipe.workers, info.device)
    eval_sampler = EvalSampler(len(val_set), info.rank, info.world_size)
    eval_loader = make_loader(
        task, val_set, eval_sampler, recipe.eval_batch_size or recipe.batch_size, recipe.workers, info.device
    )

    base_lr = effective_lr(recipe, info.world_size)
    optimizer = build_optimizer(model, recipe, base_lr)
    scaler = grad_scaler(recipe.amp, info.device)
    # DDP broadcasts rank 0's weights when it wraps the model; the EMA copies them after that, on every rank.
    trained = distributed.wrap_ddp(model, info) if info.enabled else model
    ema = ModelEMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None

    progress_state: dict[str, Any] = {"epoch": 0, "epoch_step": 0, "global_step": 0, "history": []}
    progress_state.update(best_metric=None, best_epoch=None, train_time=0.0)
    progress_state.update(epoch_sums={}, epoch_samples=0, epoch_time=0.0)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state["ema"] is not None:
            ema.module.load_state_dict(state["ema"])
        checkpoint.restore_rng(state["rng"][min(info.rank, len(state["rng"]) - 1)])
        progress_state.update({k: state[k] for k in progress_state})
        if not info.is_main:  # the saved partial-epoch sums are those of all ranks; rank 0 carries them on
            progress_state.update(epoch_sums={}, epoch_samples=0)
        if info.is_main:
            logger.info(
                f"resumed {run_dir} at epoch {state['epoch'] + 1}, step {state['epoch_step']} of {steps_per_epoch}"
            )

    config = recipe.to_dict() | {
        "world_size": info.world_size,
        "global_batch_size": recipe.batch_size * info.world_size,
        "lr_effective": base_lr,
        "torchelastic_run_id": distributed.elastic_run_id(),
    }
    writer = MetricsWriter(run_dir) if info.is_main else None
    if info.is_main:
        checkpoint.write_yaml(run_dir / "config.yaml", config)
        writer.rewrite(progress_state["history"])
        logger.info(
            f"{recipe.name}: {len(train_set)} train / {len(val_set)} val samples, {steps_per_epoch} steps/epoch, "
            f"global batch {config['global_batch_size']}, lr {base_lr:g}, {info.device}, amp {recipe.amp}, "
            f"{info.world_size} process(es) -> {run_dir}"
        )

    def save(epoch: int, epoch_step: int) -> None:
        """All ranks contribute their RNG state and partial-epoch sums; rank 0 writes, the others wait."""
        rngs = distributed.gather_objects(info, checkpoint.capture_rng())
        parts = distributed.gather_objects(info, (progress_state["epoch_sums"], progress_state["epoch_samples"]))
        if info.is_main:
            epoch_sums: dict[str, float] = {}
            for sums, _ in parts:
                for key, value in sums.items():
                    epoch_sums[key] = epoch_sums.get(key, 0.0) + value
            full = (
                {
                    "format": "visionzoo-state-v1",
                    "config": config,
                    "world_size": info.world_size,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "ema": ema.module.state_dict() if ema is not None else None,
                    "rng": rngs,
                }
                | progress_state
                | {"epoch": epoch, "epoch_step": epoch_step}
                | {"epoch_sums": epoch_sums, "epoch_samples": sum(samples for _, samples in parts)}
            )
            checkpoint.save_state(run_dir, full)
        distributed.barrier(info)

    stop = _StopRequest()
    steps_this_process, run_start = 0, time.monotonic()
    try:
        for epoch in range(progress_state["epoch"], recipe.epochs):
            sampler.set_epoch(epoch, progress_state["epoch_step"])
            model.train()
            bar = EpochProgress(steps_per_epoch, f"epoch {epoch + 1}/{recipe.epochs}", info.is_main)
            bar.update(progress_state["epoch_step"])
            sums: dict[str, float] = dict(progress_state["epoch_sums"])
            samples, time_before = progress_state["epoch_samples"], progress_state["epoch_time"]
            epoch_start = time.monotonic()
            lr = lr_at(recipe, base_lr, max(0, progress_state["global_step"] - 1), steps_per_epoch)
            for batch in loader:
                batch = task.to_device(batch, info.device, recipe.channels_last)
                lr = lr_at(recipe, base_lr, progress_state["global_step"], steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast(recipe.amp, info.device):
                    loss, logs = task.train_step(trained, batch)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise VisionZooError(
                        f"epoch {epoch + 1} step {progress_state['epoch_step'] + 1}: the loss is {loss_value}; "
                        f"training stopped, the last good checkpoint in {run_dir} is kept (try a lower --lr)"
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if recipe.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if ema is not None:
                    ema.update(model)

                n = batch_size_of(batch)
                samples += n
                sums["loss"] = sums.get("loss", 0.0) + loss_value * n
                for key, value in logs.items():
                    value = float(value)
                    sums[key] = sums.get(key, 0.0) + (value if key.startswith("num_") else value * n)
                progress_state["global_step"] += 1
                progress_state["epoch_step"] += 1
                steps_this_process += 1
                elapsed = time_before + time.monotonic() - epoch_start
                bar.update(1, loss=loss_value, lr=lr, samples_per_s=samples * info.world_size / max(elapsed, 1e-9))

                # SIGTERM reaches the ranks at different steps; they must agree to save at the same one.
                interrupted = distributed.any_rank(info, stop.requested) or (
                    steps_this_process == options.interrupt_after_steps
                )
                periodic = recipe.save_every_steps and progress_state["global_step"] % recipe.save_every_steps == 0
                if interrupted or periodic:
                    progress_state.update(
                        epoch_sums=sums, epoch_samples=samples, epoch_time=time_before + time.monotonic() - epoch_start
                    )
                    save(epoch, progress_state["epoch_step"])
                    if interrupted:
                        bar.close()
                        if info.is_main:
                            logger.info(
                                f"stopped at epoch {epoch + 1} step {progress_state['epoch_step']}; state saved in "
                                f"{run_dir} (continue with --resume auto --output {run_dir})"
                            )
                        return {"interrupted": True, "run_dir": str(run_dir)}
            bar.close()
            epoch_time = time_before + time.monotonic() - epoch_start
            progress_state["train_time"] += epoch_time

            totals = distributed.all_reduce_sum(info, torch.tensor([samples, *sums.values()], dtype=torch.float64))
            total_samples = max(1.0, float(totals[0]))
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "epoch_time_s": round(epoch_time, 3)}
            for key, value in zip(sums, totals[1:].tolist(), strict=True):
                record[key if key.startswith("num_") else f"train_{key}"] = (
                    value if key.startswith("num_") else value / total_samples
                )
            record["samples_per_sec"] = total_samples / max(epoch_time, 1e-9)
            if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
                eval_model = ema.module if ema is not None else model
                record.update(evaluate(task, eval_model, eval_loader, info, recipe))
            improved = _update_best(progress_state, record, recipe.main_metric)
            progress_state["history"].append(record)
            progress_state.update(epoch=epoch + 1, epoch_step=0, epoch_sums={}, epoch_samples=0, epoch_time=0.0)
            save(epoch + 1, 0)
            if info.is_main:
                weights = (ema.module if ema is not None else model).state_dict()
                meta = {"model": recipe.model, "recipe": recipe.name, "epoch": str(epoch + 1)}
                checkpoint.save_weights(run_dir / "last.safetensors", weights, meta)
                if improved:
                    checkpoint.save_weights(run_dir / "best.safetensors", weights, meta)
                writer.append(record)
                logger.info(_epoch_line(record))
    finally:
        stop.restore()
        if writer is not None:
            writer.close()

    summary = _summary(recipe, progress_state, time.monotonic() - run_start, info)
    if info.is_main:
        checkpoint.write_json(run_dir / "summary.json", summary)
        print(_final_block(summary, task), flush=True)
    distributed.barrier(info)
    return summary | {"run_dir": str(run_dir)}


def _update_best(progress_state: dict[str, Any], record: dict[str, Any], metric: str) -> bool:
    value = record.get(metric)
    if value is None:
        return False
    if progress_state["best_metric"] is None or value > progress_state["best_metric"]:
        progress_state["best_metric"], progress_state["best_epoch"] = value, record["epoch"]
        return True
    return False


def _epoch_line(record: dict[str, Any]) -> str:
    shown = {k: v for k, v in record.items() if k != "epoch"}
    return f"epoch {record['epoch']}: " + " ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
    )


def _summary(recipe: Recipe, progress_state: dict[str, Any], wall_s: float, info: DistInfo) -> dict[str, Any]:
    history = progress_state["history"]
    timed = history[1:] if len(history) > 1 else history  # the first epoch includes warm-up, as the seeds do
    speeds = [r["samples_per_sec"] for r in timed]
    samples_per_sec = sum(speeds) / len(speeds) if speeds else 0.0
    global_batch = recipe.batch_size * info.world_size
    return {
        "recipe": recipe.name,
        "model": recipe.model,
        "epochs": len(history),
        "final": history[-1] if history else {},
        "best": {
            "metric": recipe.main_metric,
            "value": progress_state["best_metric"],
            "epoch": progress_state["best_epoch"],
        },
        "samples_per_sec": samples_per_sec,
        "sec_per_step": global_batch / samples_per_sec if samples_per_sec else None,
        "train_time_s": progress_state["train_time"],
        "duration_s": wall_s,
        "world_size": info.world_size,
        "global_batch_size": global_batch,
    }


def _final_block(summary: dict[str, Any], task: Task) -> str:
    final = summary["final"]
    unit = getattr(task, "sample_unit", "images")
    lines = [
        "------------------ Final result ------------------",
        f"Final Performance {unit}/sec : {summary['samples_per_sec']:.4f}",
        f"Final Performance sec/step : {summary['sec_per_step'] or 0:.6f}",
        f"E2E Training Duration sec : {summary['duration_s']:.0f}",
    ]
    if "train_top1" in final:
        lines.append(f"Final Train Accuracy : {final['train_top1'] / 100:.4f}")
    for key in task.final_metrics:
        if key in final:
            lines.append(f"{key} : {final[key]:.4f}")
    lines.append(f"best {summary['best']['metric']} : {summary['best']['value']} (epoch {summary['best']['epoch']})")
    return "\n".join(lines)
