"""What machine this is: the CPU, its vector instruction set, the usable cores, the torch build and its kernels.

Benchmarks, test sessions and CI print this first, so a number or a failure names the machine it came from,
and the precision choice (`--amp auto`) reads the same flags: bf16 is native only with AMX or AVX512-BF16.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
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


# (matmul side, conv [batch, channels, size]) probed per dtype: large enough to reach a kernel's best speed
_GEMM_SIZES = (1024, 2048)
_CONV_SHAPES = ((8, 256, 28), (16, 128, 56))
_PROBE_SECONDS = 2.0  # a size whose first run takes longer (an emulated dtype) is not repeated


def _best_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    start = time.perf_counter()
    run()  # kernel selection, allocation
    if time.perf_counter() - start > _PROBE_SECONDS:
        return time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _measure_peak(dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """FLOP/s of the best large GEMM and the best large 3x3 convolution (NCHW or channels-last) in `dtype`."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = {"gemm": 0.0, "conv": 0.0}
    with torch.no_grad():
        for size in _GEMM_SIZES:
            a = torch.randn(size, size, device=device).to(dtype)
            b = torch.randn(size, size, device=device).to(dtype)
            seconds = _best_seconds(lambda a=a, b=b: (a @ b, sync()))
            results["gemm"] = max(results["gemm"], 2 * size**3 / seconds)
        for batch, channels, side in _CONV_SHAPES:
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype)
            x = torch.randn(batch, channels, side, side, device=device).to(dtype)
            flops = 2 * batch * channels * channels * 9 * side * side
            for layout in (torch.contiguous_format, torch.channels_last):
                x, conv = x.contiguous(memory_format=layout), conv.to(memory_format=layout)
                seconds = _best_seconds(lambda x=x, conv=conv: (conv(x), sync()))
                results["conv"] = max(results["conv"], flops / seconds)
    return results


def peak_flops(dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """This machine's measured FLOP/s for `dtype` at the current thread count: {"gemm", "conv", "peak"}.

    The best of a large GEMM and a large convolution (on some CPUs oneDNN's convolutions beat the BLAS GEMM),
    measured once and cached per machine, torch build, dtype and threads in the cache folder.
    """
    from visionzoo.data.cache import cache_dir

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    key = f"{name}|{torch.__version__}|{dtype}|{device.type}|{torch.get_num_threads()}"
    path = cache_dir("peak") / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    from visionzoo.files import write_json

    results = _measure_peak(dtype, device)
    results["peak"] = max(results["gemm"], results["conv"])
    write_json(path, results)
    return results


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
