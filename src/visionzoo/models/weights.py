"""Reading weight files safely and loading them into models (ours, the references', timm's).

Nothing here unpickles arbitrary objects: safetensors, or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError

StateDict = dict[str, torch.Tensor]
_CONTAINER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


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

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise VisionZooError(f"{path}: refused to load, it holds objects other than tensors ({first})") from None
    except Exception as err:  # noqa: BLE001 - any decoding failure is a bad file for the user
        raise VisionZooError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from None
    return _unwrap(obj, path)


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


def load_weights(
    model: nn.Module,
    path: str | Path,
    filter_fn: Callable[[StateDict, nn.Module], StateDict] | None = None,
    drop_mismatched_classifier: bool = False,
) -> list[str]:
    """Load a weights file strictly; returns the classifier keys dropped because their shape differed.

    `filter_fn` maps another project's key layout onto ours. Any other mismatch means the file
    belongs to another model, and the error says which keys differ. Missing BN counters are filled in.
    """
    state = read_state_dict(path)
    if filter_fn is not None:
        state = filter_fn(state, model)
    own = model.state_dict()
    # BN step counters are bookkeeping, not weights; files saved before PyTorch 0.4.1 lack them.
    state = {k: own[k] for k in own if k.endswith("num_batches_tracked") and k not in state} | state
    dropped: list[str] = []
    if drop_mismatched_classifier:
        for key in classifier_keys(model):
            if key in state and state[key].shape != own[key].shape:
                dropped.append(key)
                state[key] = own[key]
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


def load_pretrained(
    model: nn.Module, path: str | Path, filter_fn: Callable[[StateDict, nn.Module], StateDict] | None = None
) -> None:
    """What `create_model(name, pretrained=path)` does for every classifier: load strictly, except that a
    classifier trained for another number of classes is replaced by a fresh one (said in one line)."""
    if load_weights(model, path, filter_fn, drop_mismatched_classifier=True):
        classes = getattr(model, "num_classes", "?")
        print(f"{path}: its classifier has another number of classes; kept a fresh {classes}-way one", file=sys.stderr)
