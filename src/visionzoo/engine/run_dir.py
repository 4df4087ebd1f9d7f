"""Which run directory a training run writes to, and which saved state it resumes from.

Rank 0 decides (`agree_on_run`) and every rank gets its answer or its error, so all ranks stop together on a
bad `--resume` or an unwritable `--output`. Nothing here writes; it only removes what killed writes left.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from visionzoo import files
from visionzoo.engine import checkpoint, distributed
from visionzoo.engine.distributed import DistInfo
from visionzoo.errors import VisionZooError
from visionzoo.files import require_regular_file
from visionzoo.recipes.base import Recipe

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    output: Path | None = None
    resume: str | None = None  # None, "auto", or a run directory / state file
    finetune: Path | None = None


def has_state(run_dir: Path) -> bool:
    # prev.state.pt alone: a last.state.pt deleted by hand, or left by a version that renamed it away first
    return any((run_dir / name).is_file() for name in (checkpoint.STATE_NAME, checkpoint.PREVIOUS_STATE_NAME))


def newest_run(recipe: Recipe, pattern: str = "*", with_state: bool = False) -> Path | None:
    """The newest run directory of `recipe` (names start with a timestamp) matching `pattern`."""
    candidates = sorted(
        path
        for path in Path("runs", recipe.name).glob(pattern)
        if path.is_dir() and (has_state(path) or not with_state)
    )
    return candidates[-1] if candidates else None


def _run_id_of(run_dir: Path) -> str | None:
    """The torchrun job that last trained in `run_dir` (recorded in its config.yaml)."""
    if not (run_dir / "config.yaml").is_file():
        return None
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config.get("torchelastic_run_id") if isinstance(config, dict) else None


def resolve_run_dir(recipe: Recipe, options: RunOptions) -> tuple[Path, Path | None]:
    """(run directory, state file or directory to resume from). See docs/distributed.md.

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
        saved = has_state(options.output)
        ours = restarted and (run_id is None or _run_id_of(options.output) == run_id)
        if saved and options.resume is None and not ours:
            raise VisionZooError(
                f"{options.output}: already holds a run ({checkpoint.STATE_NAME}); "
                "continue it with --resume auto or choose another --output"
            )
        return options.output, options.output if saved else None
    if restarted and run_id is not None and (own := newest_run(recipe, f"*-{run_id}")) is not None:
        return own, own if has_state(own) else None
    if (options.resume == "auto" or (restarted and run_id is None)) and (
        latest := newest_run(recipe, with_state=True)
    ) is not None:
        return latest, latest
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs", recipe.name, f"{stamp}-{run_id}" if run_id else stamp), None


def prepare_run_dir(run_dir: Path) -> None:
    """Check that `run_dir` can be written, creating nothing: the directory is made with its first file, once
    the set-up succeeded, so a run refused on the way leaves no empty directory. Leftovers of writes that a
    kill interrupted are removed."""
    existing = next(path for path in (run_dir, *run_dir.parents) if path.exists() or path == path.parent)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.TemporaryFile(dir=existing):  # unnamed where the OS can: nothing appears in the folder
            pass
    except OSError as err:
        raise VisionZooError(f"--output {run_dir}: cannot write there ({err.strerror or err})") from None
    if run_dir.is_dir():
        files.remove_stale_temporaries(run_dir)


def check_compatible(state: dict[str, Any], recipe: Recipe, world_size: int, model: nn.Module, source: Path) -> None:
    """A saved state can be resumed by this run: same model, same global batch, weights of the same shapes."""
    saved = state["config"]
    if saved.get("name") and recipe.name and saved["name"] != recipe.name:
        raise VisionZooError(
            f"{source}: a run of recipe {saved['name']}, not {recipe.name}; resume it with "
            f"`train {saved['name']} --resume`, or train {recipe.name} in another --output"
        )
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


def read_resume_state(source: Path, recipe: Recipe, world_size: int, model: nn.Module) -> tuple[Path, dict[str, Any]]:
    """(state file, state) to resume from; a run directory's unusable last state falls back to the previous one."""

    def check(state: dict[str, Any], path: Path) -> None:
        check_compatible(state, recipe, world_size, model, path)

    if source.is_dir():
        found = checkpoint.load_latest_state(source, check)
        if found is None:
            raise VisionZooError(f"{source}: no {checkpoint.STATE_NAME} to resume from")
        return found
    state = checkpoint.load_state(require_regular_file(source, "state file"))
    check(state, source)
    return source, state


def agree_on_run(
    recipe: Recipe, options: RunOptions, info: DistInfo, model: nn.Module
) -> tuple[Path, dict[str, Any] | None]:
    """(run directory, the state to resume or None): rank 0 decides, every rank gets its answer or its error."""
    decision: tuple[Path | None, Path | None, str | None] = (None, None, None)
    state = None
    if info.is_main:
        try:
            run_dir, source = resolve_run_dir(recipe, options)
            state_path = None
            if source is not None:
                state_path, state = read_resume_state(source, recipe, info.world_size, model)
            prepare_run_dir(run_dir)
            decision = (run_dir, state_path, None)
        except VisionZooError as err:
            decision = (None, None, str(err))
    run_dir, state_path, error = distributed.broadcast_object(info, decision)
    if error is not None:
        raise VisionZooError(error)
    if state_path is not None and not info.is_main:
        state = checkpoint.load_state(state_path)
    return run_dir, state
