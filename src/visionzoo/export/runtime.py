"""Runtimes that run an exported or in-memory model on numpy batches, and their timing.

PyTorch eager, PyTorch compiled for inference with freezing, onnxruntime and OpenVINO (optional extras) share
one interface (float32 batch in, a list of numpy outputs out, `describe()`), so prediction, evaluation and the
inference benchmark differ only in the runtime. `load_runtime` makes any of them from a checkpoint (converting
it to ONNX once, cached by the weights' hash) or from an ONNX file, and `auto` picks one by a rule.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError
from visionzoo.files import file_sha256
from visionzoo.recipes.base import InferenceRuntime, choices

if TYPE_CHECKING:
    from visionzoo.export.model_card import ModelCard

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'visionzoo[onnx]'"
INSTALL_HINTS = {"openvino": "pip install 'visionzoo[openvino]'"}
INPUT_NAME = "input"  # the exported graph's input
RUNTIMES = choices(InferenceRuntime)

Runtime = Callable[[np.ndarray], list[np.ndarray]]


def require(module: str) -> Any:
    """Import an optional dependency, or fail with one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        hint = INSTALL_HINTS.get(module, f"ONNX export and onnxruntime need: {INSTALL_HINT}")
        raise VisionZooError(f"{module} is not installed; {hint}") from None


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session on `threads` threads (default: torch's, so one setting, e.g. torchrun's share of
    the cores, holds for every runtime and a run's numbers do not depend on the runtime's own default)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
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

    def describe(self) -> str:
        return f"{self.name} {_DTYPE_NAMES[self.dtype]}"


class CompiledRuntime(TorchRuntime):
    """torch.compile (inductor) for inference with freezing: weights become constants, BatchNorm is folded and
    convolution weights are pre-packed for oneDNN once. Freezing acts only on graphs compiled without
    gradients, so it leaves a training compile in the same process alone. Compiles at the first call (a C++
    compiler is needed there) and once more for each new input shape."""

    name = "compiled"

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        import torch._inductor.config

        torch._inductor.config.freezing = True
        super().__init__(model, dtype, compile=True)

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        import torch._dynamo.exc

        try:
            return super().__call__(batch)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # inductor's code did not build: one line
            cause = err.__cause__ or err
            first = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ""
            raise VisionZooError(f"--runtime compiled is unavailable here: {type(cause).__name__}: {first}") from None


class OnnxRuntime:
    """An ONNX file in onnxruntime (CPU). A fixed exported batch is served by padding the last chunk."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = onnx_session(path, threads)
        self.input_name = INPUT_NAME
        self.fixed_batch = fixed_batch(path)

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return in_fixed_batches(lambda x: self.session.run(None, {self.input_name: x}), batch, self.fixed_batch)

    def describe(self) -> str:
        return f"{self.name} {'int8' if is_int8_onnx(self.path) else 'fp32'}"


class OpenVinoRuntime:
    """An ONNX file in OpenVINO (CPU), at an explicit inference precision: OpenVINO's CPU plugin would
    otherwise run bf16 on CPUs that have it, and fp32 must mean fp32. A quantized (QDQ) file runs int8."""

    name = "openvino"

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.float32, threads: int | None = None) -> None:
        ov = require("openvino")
        self.path, self.dtype = Path(path), dtype
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if dtype == torch.bfloat16 else "f32"}
        config["INFERENCE_NUM_THREADS"] = threads or torch.get_num_threads()  # as onnx_session
        self.compiled = ov.Core().compile_model(ov.Core().read_model(str(path)), "CPU", config)
        self.fixed_batch = fixed_batch(path)

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return in_fixed_batches(self._run, batch, self.fixed_batch)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self.compiled(batch)
        return [np.asarray(result[output], dtype=np.float32) for output in self.compiled.outputs]

    def describe(self) -> str:
        return f"{self.name} {'int8' if is_int8_onnx(self.path) else _DTYPE_NAMES[self.dtype]}"


def fixed_batch(path: str | Path) -> int | None:
    """The batch an ONNX file was exported with, or None for a dynamic batch."""
    batch = onnx_batch_dim(path)
    return batch if isinstance(batch, int) and batch > 0 else None


def in_fixed_batches(run: Runtime, batch: np.ndarray, step: int | None) -> list[np.ndarray]:
    """`run` on float32 `batch`; a file exported with a fixed batch `step` gets chunks of it, the last one
    padded with zeros (the padding's outputs are dropped)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if step is None or len(batch) == step:
        return run(batch)
    parts = []
    for begin in range(0, len(batch), step):
        chunk = batch[begin : begin + step]
        padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
        parts.append([out[: len(chunk)] for out in run(padded)])
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def is_int8_onnx(path: str | Path) -> bool:
    """Whether an ONNX file is a static int8 quantization (written by export/quantize.py as `.int8.onnx`)."""
    return Path(path).name.endswith(".int8.onnx")


def auto_runtime(card: ModelCard, dtype: torch.dtype, device: torch.device, available: Callable[[str], bool]
                 ) -> tuple[str, str]:  # fmt: skip
    """(runtime, why): a rule on the model kind, the device and the precision `--amp` resolved to (itself a rule on
    the CPU's flags), never a timing, so a busy machine cannot flip it. The measurements behind it are
    bench_inference's in docs/benchmarks.md; docs/speed.md says where it is not the fastest.

    - BMN: PyTorch, whose BM layer is a sparse CSR product that ONNX has no operator for (exports are a dense
      GEMM, 2x slower). A GPU, or a transformer (VideoMAE): PyTorch.
    - the video classifier (a small MLP on features, well under a millisecond a video): onnxruntime, whose
      per-call overhead is the least (5x PyTorch's, 1.6x OpenVINO's at batch 1).
    - classifiers and clip backbones on the CPU: OpenVINO, at fp32 or bf16 as `--amp` resolved (it folds
      BatchNorm, fuses activations and pre-packs weights, and is the only converted runtime with bf16); without
      it, onnxruntime in fp32, or PyTorch in bf16 when `--amp` resolved to bf16 (onnxruntime has no bf16 and its
      fp32 is slower than PyTorch's bf16). `compiled` is never picked: it compiles for minutes at every start
      and needs a C++ compiler at run time.
    """
    bf16 = dtype == torch.bfloat16
    if card.task in PROPOSAL_TASKS:
        return "torch", f"{card.model}: PyTorch's sparse BM layer beats the dense GEMM an export needs"
    if device.type != "cpu":
        return "torch", f"{card.model} on {device.type}: the converted runtimes run on the CPU"
    if card.model in TORCH_ONLY:
        return "torch", f"{card.model}: {TORCH_ONLY[card.model]}"
    if card.task == "video_classification":
        if available("onnxruntime"):
            return "onnxruntime", f"{card.model}: a small MLP, onnxruntime has the least overhead per call"
        return "torch", f"{card.model}: onnxruntime is not installed ({INSTALL_HINT})"
    if available("openvino"):
        return "openvino", f"{card.model}: OpenVINO {'bf16' if bf16 else 'fp32'}, the fastest on the CPU"
    if bf16:
        return "torch", f"{card.model}: PyTorch bf16 (onnxruntime runs fp32 only; {INSTALL_HINTS['openvino']})"
    if available("onnxruntime"):
        return "onnxruntime", f"{card.model}: onnxruntime fp32 ({INSTALL_HINTS['openvino']} for OpenVINO)"
    return "torch", f"{card.model}: no converted runtime is installed ({INSTALL_HINT})"


TORCH_ONLY = {"videomae": "a transformers model, whose conversion is not verified"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def weights_hash(checkpoint: Path, card: ModelCard) -> str:
    """What a conversion depends on: the weights file's bytes and the model, its kwargs and input shape."""
    model = f"{card.model} {card.model_kwargs} {card.input_shape}"
    return hashlib.sha256(f"{model} {file_sha256(checkpoint)}".encode()).hexdigest()[:16]


def module_hash(model: nn.Module, card: ModelCard) -> str:
    """The same for a model in memory (random weights, or a feature extractor's streams): its tensors' bytes."""
    digest = hashlib.sha256(f"{card.model} {card.model_kwargs} {card.input_shape} {type(model).__name__}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def converted_onnx(card: ModelCard, key: str, build: Callable[[], nn.Module]) -> Path:
    """The fp32 ONNX export of the model `build` makes (dynamic batch, checked against PyTorch), made once and
    cached under the cache dir by `key` (a hash of the weights), so the next start only loads it."""
    from visionzoo.data.cache import cache_dir
    from visionzoo.export.onnx import export_onnx

    path = cache_dir("runtimes") / f"{card.model}-{key}.onnx"
    if not path.is_file():
        result = export_onnx(build(), card, path, dynamic_batch=True)
        logger.info("converted %s to %s (onnxruntime vs PyTorch: %.1e relative)", card.model, path, result.max_rel)
    return path


def runtime_of(
    card: ModelCard,
    key: Callable[[], str],
    build: Callable[[], nn.Module],
    runtime: str,
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
) -> TorchRuntime | OnnxRuntime | OpenVinoRuntime:
    """The model `build` makes in `runtime` (not auto), converted to ONNX under `key()` where the runtime needs it."""
    if runtime == "torch":
        return TorchRuntime(build(), dtype)
    if runtime == "compiled":
        return CompiledRuntime(build(), dtype)
    require("onnxruntime" if runtime == "onnxruntime" else "openvino")
    return onnx_runtime(converted_onnx(card, key(), build), runtime, dtype, threads)


def onnx_runtime(path: Path, runtime: str, dtype: torch.dtype, threads: int | None) -> OnnxRuntime | OpenVinoRuntime:
    """An ONNX file in onnxruntime or OpenVINO (at `dtype`)."""
    return OpenVinoRuntime(path, dtype, threads) if runtime == "openvino" else OnnxRuntime(path, threads)


def resolve_runtime(card: ModelCard, runtime: str, dtype: torch.dtype, device: torch.device, onnx: bool = False
                    ) -> tuple[str, str]:  # fmt: skip
    """(runtime, why): `runtime` as asked, or auto's pick; an ONNX file runs in OpenVINO when installed (its int8
    ran 2.3x onnxruntime's int8 for ResNet50-BAM, docs/benchmarks.md bench_int8), else in onnxruntime."""
    if runtime not in RUNTIMES:
        raise VisionZooError(f"--runtime {runtime}: expected one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime, "as asked"
    if onnx:
        return ("openvino" if _installed("openvino") else "onnxruntime"), "auto: an ONNX file"
    picked, why = auto_runtime(card, dtype, device, _installed)
    return picked, f"auto: {why}"


def load_runtime(
    card: ModelCard,
    source: str | Path,
    runtime: str = "auto",
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
) -> TorchRuntime | OnnxRuntime | OpenVinoRuntime:
    """The model of `card` in `runtime`, from a checkpoint (.safetensors/.pt: converted to ONNX as needed,
    cached) or an ONNX file (onnxruntime or OpenVINO only). `dtype` is what torch runs under autocast and
    OpenVINO's inference precision; onnxruntime runs the file's own precision (fp32 or int8). `auto` follows
    `auto_runtime`; what runs, and why, is logged in one line once it is loaded."""
    source = Path(source)
    is_onnx = source.suffix == ".onnx"
    runtime, why = resolve_runtime(card, runtime, dtype, torch.device("cpu"), is_onnx)
    if is_onnx:
        if runtime in ("torch", "compiled"):
            raise VisionZooError(f"--runtime {runtime} needs a checkpoint, not the ONNX file {source}")
        run = onnx_runtime(source, runtime, dtype, threads)
    else:
        # BMN compiles in its GEMM formulation: dynamo cannot trace the CSR product (as ONNX has no operator for it)
        dense_bm = {"bm_impl": "matmul"} if runtime == "compiled" and card.task in PROPOSAL_TASKS else {}
        build = lambda: card.build_model(pretrained=source, **dense_bm)  # noqa: E731
        run = runtime_of(card, lambda: weights_hash(source, card), build, runtime, dtype, threads)
    logger.info("runtime: %s (%s)", run.describe(), why)
    return run


PROPOSAL_TASKS = ("proposals", "windowed_proposals")


class RuntimeModule(nn.Module):
    """A runtime seen as a module (tensor in, tensors out, on the input's device), for code that calls models,
    such as a task's evaluation step."""

    def __init__(self, runtime: TorchRuntime | OnnxRuntime | OpenVinoRuntime) -> None:
        super().__init__()
        self.runtime = runtime

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = self.runtime(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        tensors = tuple(torch.from_numpy(out).to(x.device) for out in outputs)
        return tensors[0] if len(tensors) == 1 else tensors


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
