"""Training states and weights: written through `files.atomic_write`, so they never corrupt; the previous
state is kept.

`last.safetensors` / `best.safetensors` hold weights only (for sharing and `--finetune`); `last.state.pt`
holds everything an exact resume needs and loads with `weights_only=True` (tensors and plain Python only).
"""

from __future__ import annotations

import collections
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import ConfigDict, Field

from visionzoo.errors import VisionZooError
from visionzoo.files import OpenSchema, Schema, replace_with_link, validate, write_bytes

logger = logging.getLogger(__name__)

STATE_NAME, PREVIOUS_STATE_NAME = "last.state.pt", "prev.state.pt"
STATE_FORMAT = "visionzoo-state-v1"


class SavedConfig(OpenSchema):
    """The recipe a state was trained with, as far as a resume checks it (`run_dir.check_compatible`)."""

    name: str = ""
    model: Annotated[str, Field(min_length=1)]
    batch_size: Annotated[int, Field(ge=1)]


class StateHeader(Schema):
    """What a training state must hold besides tensors: a state without them cannot be resumed."""

    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)
    format: Literal["visionzoo-state-v1"]  # STATE_FORMAT
    config: SavedConfig
    world_size: Annotated[int, Field(ge=1)]
    model: dict[str, torch.Tensor]


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    # serialised in memory, written by Python: a write error is an OSError with its reason, not the library's
    data = save({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}, metadata=metadata)
    write_bytes(path, data)


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write last.state.pt so that a complete one exists at every moment: the new state goes to a temporary
    file, the current one becomes prev.state.pt, then the temporary file replaces it."""
    last, previous = run_dir / STATE_NAME, run_dir / PREVIOUS_STATE_NAME
    check_loadable(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # in memory: torch.save reports a full disk as an opaque RuntimeError

    def keep_previous() -> None:
        if last.exists():
            replace_with_link(previous, last)

    write_bytes(last, buffer.getbuffer(), keep_previous)


_PLAIN = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def check_loadable(value: Any, where: str = "state") -> None:
    """Refuse, when it is written, any value that `torch.load(weights_only=True)` would refuse when the run is
    resumed (a numpy scalar among the metrics, say): a state that cannot be resumed is worse than no state.
    Exact types, since numpy's float64 is a subclass of float yet pickles as numpy."""
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            check_loadable(key, f"{where} key")
            check_loadable(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_loadable(item, f"{where}[{index}]")
    else:
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a resume cannot load")


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means this file cannot be resumed from
        raise VisionZooError(f"{path}: cannot resume from it ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise VisionZooError(f"{path}: not a visionzoo training state")
    validate(StateHeader, state, str(path), "training state")
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
