"""What machine this is: the CPU, its vector instruction set, the usable cores, the torch build and its kernels.

Benchmarks, test sessions and CI print this first, so a number or a failure names the machine it came from,
and the precision choice (`--amp auto`) reads the same flags: bf16 is native only with AMX or AVX512-BF16.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache

import torch

# torch's kernels come from three libraries with their own dispatch; forcing a level means forcing all three.
DISPATCH_ENV = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
    },
}
_AVX512_CORE = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    """The model name, with family and model numbers (virtual machines often show a bare "AMD EPYC")."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


def usable_cores() -> int:
    """Cores this process may run on (a SLURM or container CPU set), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def vector_isa(flags: frozenset[str]) -> str:
    """The best vector instruction set the flags show, as people name it."""
    if "amx_bf16" in flags:
        return "AMX (AVX-512, AMX-BF16)"
    if flags >= _AVX512_CORE:
        return "AVX-512 with BF16" if "avx512_bf16" in flags else "AVX-512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    if "avx" in flags:
        return "AVX"
    return "SSE" if flags else "unknown"


def has_native_bf16(flags: frozenset[str]) -> bool:
    """bf16 matmuls and convs in hardware (AMX tiles or AVX512-BF16 dot products); elsewhere they are emulated."""
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def dispatch_levels(flags: frozenset[str]) -> list[str]:
    """The kernel levels torch can be forced to on this CPU (see DISPATCH_ENV), lowest first."""
    levels = ["default"]
    if {"avx2", "fma"} <= flags:
        levels.append("avx2")
    if flags >= _AVX512_CORE:
        levels.append("avx512")
    return levels


@dataclass(frozen=True)
class Machine:
    cpu: str
    isa: str
    cores: int
    torch: str
    dispatch: str  # the level torch's own kernels run at (ATEN_CPU_CAPABILITY lowers it)
    forced: str  # the dispatch variables set in the environment, if any
    gpus: tuple[str, ...]

    def describe(self) -> str:
        gpus = ", ".join(self.gpus) if self.gpus else "none"
        forced = f" (forced: {self.forced})" if self.forced else ""
        return (
            f"CPU {self.cpu}, {self.isa}, {self.cores} usable cores; torch {self.torch}, "
            f"kernels {self.dispatch}{forced}; GPU {gpus}"
        )


def machine() -> Machine:
    forced = " ".join(f"{k}={os.environ[k]}" for k in DISPATCH_ENV["default"] if k in os.environ)
    gpus = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Machine(
        cpu=cpu_model(),
        isa=vector_isa(cpu_flags()),
        cores=usable_cores(),
        torch=torch.__version__,
        dispatch=torch.backends.cpu.get_cpu_capability(),
        forced=forced,
        gpus=gpus,
    )


def _main(argv: list[str]) -> None:
    """`python -m visionzoo.engine.hardware [levels | env LEVEL]`: for CI scripts that run tests per level."""
    if argv[:1] == ["levels"]:
        print(" ".join(dispatch_levels(cpu_flags())))
    elif argv[:1] == ["env"] and len(argv) == 2 and argv[1] in DISPATCH_ENV:
        print(" ".join(f"{k}={v}" for k, v in DISPATCH_ENV[argv[1]].items()))
    else:
        print(machine().describe())


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
