"""Precision and compilation that fit the machine: `--amp auto` (the default), bf16, fp16 + gradient scaler, off.

`auto` takes, on CUDA, the seed's fp16 when the recipe's seed trained in fp16, else bf16 where the GPU supports
it, else fp16 with the gradient scaler; on CPU bf16 only where it is native (AMX or AVX512-BF16 in the CPU
flags: a rule, never a timing, so that a busy machine gets the same answer), fp32
otherwise: emulated bf16 is many times slower than fp32 (docs/benchmarks.md). Every command resolves the
request once, says what it chose and why, and runs the resolved precision.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
import torch.nn as nn

from visionzoo.engine.hardware import cpu_flags, has_native_bf16, vector_isa
from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    requested: str  # what the recipe or flag asked for
    resolved: str  # off | bf16 | fp16: what runs
    reason: str  # why, for the one line a run prints

    def describe(self) -> str:
        return f"amp {self.requested} -> {self.resolved} ({self.reason})"


def _cpu_auto() -> tuple[str, str]:
    """A rule on the CPU's flags alone, never a timing: the same answer on every run of the same machine,
    however busy it is (docs/speed.md has what each kind measured)."""
    flags = cpu_flags()
    isa = vector_isa(flags)
    if not has_native_bf16(flags):
        return "off", f"{isa} CPU without native bf16: fp32"
    return "bf16", f"{isa} CPU, native bf16"


def resolve_amp(requested: str, device: torch.device, seed_amp: str = "off") -> Precision:
    """The precision to run `requested` with on `device`; `seed_amp` is what the recipe's seed used."""
    if device.type == "cuda":
        if requested != "auto":
            return Precision(requested, requested, "as asked")
        if seed_amp == "fp16":
            return Precision(requested, "fp16", "the seed trained in fp16; with a gradient scaler")
        if torch.cuda.is_bf16_supported():
            return Precision(requested, "bf16", f"{torch.cuda.get_device_name(device)} supports bf16")
        return Precision(requested, "fp16", "GPU without bf16; fp16 with a gradient scaler")
    if requested == "fp16":
        raise VisionZooError(
            "--amp fp16 needs a CUDA device (fp16 with a gradient scaler); on CPU use --amp auto or bf16"
        )
    if requested == "auto":
        resolved, reason = _cpu_auto()
        return Precision(requested, resolved, reason)
    if requested == "bf16" and not has_native_bf16(cpu_flags()):
        logger.warning(
            "--amp bf16: this CPU (%s) has no native bf16; it is emulated, many times slower than fp32 "
            "(docs/benchmarks.md; --amp auto would take fp32)",
            vector_isa(cpu_flags()),
        )
        return Precision(requested, "bf16", "as asked; emulated on this CPU")
    return Precision(requested, requested, "as asked")


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """`model` under torch.compile (inductor) when `enabled`; the module itself otherwise.

    The compiled wrapper shares the module's parameters: checkpoints keep saving the module itself.
    """
    if not enabled:
        return model
    if not hasattr(torch, "compile"):
        raise VisionZooError("--compile: this torch has no torch.compile")
    return torch.compile(model)


def compute_dtype(amp: str) -> torch.dtype:
    """The dtype matmuls and convolutions run in under a resolved precision."""
    return _DTYPES.get(amp, torch.float32)


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for a resolved precision (off | bf16 | fp16)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 needs its loss scaled (its range is small); bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
