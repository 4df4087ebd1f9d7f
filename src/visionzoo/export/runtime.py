"""Runtimes that run an exported or in-memory model on numpy batches: PyTorch, onnxruntime; and their timing.

Prediction and the inference benchmark use the same two classes (float32 batch in, numpy outputs out), so
only the runtime differs between `--checkpoint` and `--onnx`.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError

INSTALL_HINT = "pip install 'visionzoo[onnx]'"
INPUT_NAME = "input"  # the exported graph's input

Runtime = Callable[[np.ndarray], list[np.ndarray]]


def require(module: str) -> Any:
    """Import an optional dependency, or fail with one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VisionZooError(f"{module} is not installed; ONNX export and onnxruntime need: {INSTALL_HINT}") from None


def onnx_session(path: str | Path, threads: int | None = None):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_batch_dim(path: str | Path) -> int | str:
    """The exported input's batch dimension: an int when fixed, its symbol when dynamic."""
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param if dim.dim_param else int(dim.dim_value)


class TorchRuntime:
    """A PyTorch model as a runtime; `dtype` bfloat16 (float16) runs under autocast; `compile` uses torch.compile."""

    name = "torch"

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32, compile: bool = False) -> None:
        from visionzoo.engine.precision import compiled

        self.device = next(model.parameters()).device
        self.model, self.dtype = compiled(model.eval(), compile), dtype

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(batch).to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, self.dtype, self.dtype != torch.float32):
            out = self.model(x)
        return [t.float().cpu().numpy() for t in (out if isinstance(out, tuple) else (out,))]


class OnnxRuntime:
    """An ONNX file in onnxruntime (CPU). A fixed exported batch is served by padding the last chunk."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = onnx_session(path, threads)
        self.input_name = INPUT_NAME
        batch = onnx_batch_dim(path)
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        step = self.fixed_batch
        if step is None or len(batch) == step:
            return self.session.run(None, {self.input_name: batch})
        parts = []
        for begin in range(0, len(batch), step):
            chunk = batch[begin : begin + step]
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            parts.append([out[: len(chunk)] for out in self.session.run(None, {self.input_name: padded})])
        return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def time_runtime(runtime: Runtime, batch: np.ndarray, steps: int, warmup: int) -> list[float]:
    """Seconds of each of `steps` calls on `batch`, after `warmup` untimed ones."""
    for _ in range(warmup):
        runtime(batch)
    times = []
    for _ in range(steps):
        begin = time.perf_counter()
        runtime(batch)
        times.append(time.perf_counter() - begin)
    return times


def latency_stats(times: list[float], batch: int) -> dict[str, float]:
    per_item = sorted(1000.0 * t / batch for t in times)
    p90 = per_item[min(len(per_item) - 1, int(round(0.9 * (len(per_item) - 1))))]
    return {
        "ms_per_item_median": statistics.median(per_item),
        "ms_per_item_p90": p90,
        "items_per_sec": batch * len(times) / sum(times),
    }
