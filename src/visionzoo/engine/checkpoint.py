"""Checkpoints that never corrupt: write a temporary file, fsync, rename; the previous state is kept.

`last.safetensors` / `best.safetensors` hold weights only (for sharing and `--finetune`); `last.state.pt`
holds everything an exact resume needs and loads with `weights_only=True` (tensors and plain Python only).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

STATE_NAME, PREVIOUS_STATE_NAME = "last.state.pt", "prev.state.pt"
STATE_FORMAT = "visionzoo-state-v1"


def atomic_write(path: Path, write: Callable[[Path], None], owner: str = "") -> None:
    """Call `write(tmp)` for a temporary file beside `path`, fsync it, and rename it over `path`.

    `owner` goes into the temporary name (`.<name>.<owner>.<random>.tmp`), so that a later run can tell the
    leftovers of a killed process from the files of a live one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{owner}." if owner else f".{path.name}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write last.state.pt atomically, keeping the one it replaces as prev.state.pt."""
    last = run_dir / STATE_NAME
    if last.exists():
        os.replace(last, run_dir / PREVIOUS_STATE_NAME)
    atomic_write(last, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means this file cannot be resumed from
        raise VisionZooError(f"{path}: cannot resume from it ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise VisionZooError(f"{path}: not a visionzoo training state")
    return state


def load_latest_state(
    run_dir: Path, check: Callable[[dict[str, Any], Path], None] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """(path, state) of the newest usable state of a run directory; None when it holds none.

    A last state that does not load (truncated, not a state) or that `check` rejects (another model) is
    reported as a warning and the previous one is used; when neither is usable the last one's error is raised.
    """
    errors: list[VisionZooError] = []
    for name in (STATE_NAME, PREVIOUS_STATE_NAME):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            state = load_state(path)
            if check is not None:
                check(state, path)
        except VisionZooError as err:
            errors.append(err)
            continue
        if errors:
            logger.warning("%s; resuming from the previous checkpoint %s instead", errors[0], path)
        return path, state
    if errors:
        raise errors[0]
    return None
