"""Checkpoints that never corrupt: write a temporary file, fsync, rename; the previous state is kept.

`last.safetensors` / `best.safetensors` hold weights only (for sharing and `--finetune`); `last.state.pt`
holds everything an exact resume needs and loads with `weights_only=True` (tensors and plain Python only).
A temporary file is named after its writer (machine and process), so the next command on the folder can tell
the leftover of a killed writer, which it deletes, from a file being written now.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

STATE_NAME, PREVIOUS_STATE_NAME = "last.state.pt", "prev.state.pt"
STATE_FORMAT = "visionzoo-state-v1"
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[^.]*)\.(?P<pid>\d+)\.tmp$")
FOREIGN_TEMPORARY_AGE_S = 3600  # a temporary file of another machine (or version) is a leftover after an hour


def _host() -> str:
    return socket.gethostname().replace(".", "_")


def temporary_path(path: Path, pid: int | None = None, host: str | None = None) -> Path:
    """Where `atomic_write` writes `path` first: named after its writer (machine, process), so that a later
    command can tell the leftovers of a killed writer from the file of a live one."""
    return path.with_name(f".{path.name}.{host or _host()}.{pid or os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], None], before_replace: Callable[[], None] | None = None) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, fsync it, and rename it over `path`
    (`before_replace` runs just before the rename).

    A failure on the way (a full disk, a folder turned read-only) leaves `path` as it was and no temporary
    file, and is one VisionZooError naming `path`.
    """
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise VisionZooError(
            f"{path}: cannot write it ({err.strerror or err}); the file there, if any, is unchanged"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def is_temporary(name: str) -> bool:
    """A file name `atomic_write` writes to before renaming."""
    return _TEMPORARY.match(name) is not None


def remove_stale_temporaries(folder: Path, every_writer: bool = False) -> int:
    """Delete the temporary files that writers killed during a write left in `folder`: those of a process of
    this machine that no longer runs, and those of other machines older than an hour (`every_writer`: all of
    them, for when every writer is known to be done). Best effort: a folder that cannot be changed stays as it
    is. Returns how many were removed."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")]
    except OSError:
        return 0
    now, removed = time.time(), 0
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if every_writer:
            stale = found is not None
        elif found is not None and found["host"] == _host():
            stale = not _process_exists(int(found["pid"]))
        else:
            stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_TEMPORARY_AGE_S
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
                logger.info("removed %s, left by a write that did not finish", entry.path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    # serialised in memory, written by Python: a write error is an OSError with its reason, not the library's
    data = save({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}, metadata=metadata)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write last.state.pt so that a complete one exists at every moment: the new state goes to a temporary
    file, the current one becomes prev.state.pt, then the temporary file replaces it."""
    last, previous = run_dir / STATE_NAME, run_dir / PREVIOUS_STATE_NAME
    buffer = io.BytesIO()
    torch.save(state, buffer)  # in memory: torch.save reports a full disk as an opaque RuntimeError

    def keep_previous() -> None:
        if last.exists():
            _replace_with_link(previous, last)

    atomic_write(last, lambda tmp: tmp.write_bytes(buffer.getbuffer()), keep_previous)


def _replace_with_link(path: Path, target: Path) -> None:
    """`path` becomes what `target` is now, atomically: a hard link (a copy where the file system has none)
    under a temporary name, renamed over `path`."""
    tmp = temporary_path(path)
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:
            shutil.copyfile(target, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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
        if not path.is_file():  # missing, or not a regular file (which could block the reader)
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
