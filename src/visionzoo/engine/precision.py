"""Mixed precision: bf16 autocast on CPU and CUDA, fp16 autocast with a gradient scaler on CUDA."""

from __future__ import annotations

import contextlib

import torch

from visionzoo.errors import VisionZooError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(amp: str, device: torch.device) -> None:
    if amp not in ("off", "bf16", "fp16"):
        raise VisionZooError(f"--amp {amp}: expected off, bf16 or fp16")
    if amp == "fp16" and device.type != "cuda":
        raise VisionZooError("--amp fp16 needs a CUDA device (fp16 with a gradient scaler); on CPU use --amp bf16")


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
