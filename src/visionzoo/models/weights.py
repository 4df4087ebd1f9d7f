"""Reading weight files safely and loading them into models (ours, the references', timm's).

Nothing here unpickles arbitrary objects: safetensors, or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
CheckpointFilter = Callable[[StateDict, nn.Module], StateDict]
_CONTAINER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Plain attribute bags that training scripts save beside the weights (TSP's {"model", ..., "args": Namespace}):
# unpickling one runs no code of the file's choosing. Allowed process-wide (add_safe_globals is in torch 2.4).
torch.serialization.add_safe_globals([argparse.Namespace])


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a weights file: safetensors, or a PyTorch checkpoint loaded with weights_only=True.

    Unwraps the usual containers (`state_dict`, `model`) and strips DDP / torch.compile prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise VisionZooError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            _check_safetensors_layout(path)
            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise VisionZooError(f"{path}: refused to load, it holds objects other than tensors ({first})") from None
    except Exception as err:  # noqa: BLE001 - any decoding failure is a bad file for the user
        raise VisionZooError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from None
    return _unwrap(obj, path)


def _check_safetensors_layout(path: Path) -> None:
    """Say plainly what is wrong with a safetensors file that is empty, cut short or garbled.

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's byte range, the bytes.
    """
    size = path.stat().st_size
    if size == 0:
        raise VisionZooError(f"{path}: empty file (0 bytes), not safetensors weights")
    bad = f"{path}: truncated or corrupt safetensors file"
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if size < 8 or length > size - 8:
            raise VisionZooError(f"{bad}: its header claims {length} bytes, the file has {size}")
        try:
            header = json.loads(handle.read(length))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise VisionZooError(f"{bad}: its header is not JSON") from None
    if not isinstance(header, dict):
        raise VisionZooError(f"{bad}: its header is not a JSON object")
    ranges = [entry.get("data_offsets") for entry in header.values() if isinstance(entry, dict)]
    need = max((r[1] for r in ranges if isinstance(r, list) and len(r) == 2 and isinstance(r[1], int)), default=0)
    if need > size - 8 - length:
        raise VisionZooError(f"{bad}: its tensors need {need} bytes, the file holds {size - 8 - length}")


def _unwrap(obj: object, path: Path) -> StateDict:
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VisionZooError(f"{path}: holds no state dict of tensors")
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def count_blocks(state: StateDict, layer: str) -> int:
    """How many blocks `layer` (e.g. "layer3") has in a ResNet-style state dict: what tells depths apart."""
    return len({k.split(".")[1] for k in state if k.startswith(f"{layer}.")})


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's classifier (from `get_classifier()`), empty if it has none."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if head is None:
        return set()
    for name, module in model.named_modules():
        if module is head:
            return {f"{name}.{k}" if name else k for k in head.state_dict()}
    return set()


def load_checkpoint(model: nn.Module, path: str | Path, adapt_classifier: bool = False) -> list[str]:
    """Load a weights file into `model` strictly; the one way every command and `create_model` load weights.

    The model's own key mapping (`pretrained_cfg.checkpoint_filter`, set by `create_model`) turns the reference
    projects' layouts into ours first, and missing BN counters are filled in. With `adapt_classifier` (what
    `create_model(pretrained=...)` and `--finetune` do) a classifier of another shape is replaced by the model's
    fresh one, said in one line, and its keys are returned. Any other mismatch means the file belongs to
    another model: the error names the file and the keys that differ.
    """
    state = read_state_dict(path)
    checkpoint_filter = getattr(getattr(model, "pretrained_cfg", None), "checkpoint_filter", None)
    if checkpoint_filter is not None:
        state = checkpoint_filter(state, model)
    own = model.state_dict()
    # BN step counters are bookkeeping, not weights; files saved before PyTorch 0.4.1 lack them.
    state = {k: own[k] for k in own if k.endswith("num_batches_tracked") and k not in state} | state
    dropped: list[str] = []
    if adapt_classifier:
        for key in classifier_keys(model):
            if key in state and state[key].shape != own[key].shape:
                dropped.append(key)
                state[key] = own[key]
        if dropped:
            classes = getattr(model, "num_classes", "?")
            logger.info("%s: its classifier has another number of classes; kept a fresh %s-way one", path, classes)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        name = type(model).__name__
        raise VisionZooError(f"{path}: weights do not fit {name} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
    return dropped
