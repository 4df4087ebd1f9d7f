"""Static int8 quantization of an fp32 ONNX export, calibrated on the recipe's own data.

Tool: onnxruntime's `quantize_static` (QDQ format, per-channel weights, int8 activations and weights), not
OpenVINO's NNCF: it needs nothing beyond the `onnx` extra, and its QDQ file runs in onnxruntime (VNNI/AMX int8
kernels) and in OpenVINO alike, which reads QDQ pairs as int8 layers. Calibration: the activations' ranges over
the first N batches of the recipe's validation items, prepared exactly as evaluation prepares them (the task's
own evaluation step feeds them through the fp32 model); no labels are used.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from visionzoo.engine.distributed import DistInfo
from visionzoo.engine.evaluate import eval_loader
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard
from visionzoo.export.onnx import export_onnx, save_with_card
from visionzoo.export.runtime import INPUT_NAME, require
from visionzoo.recipes.base import Recipe
from visionzoo.tasks import make_task


class _InputRecorder(nn.Module):
    """The fp32 model, keeping every input it is given: whatever a task's batch holds, its model input is seen."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        self.inputs.append(np.ascontiguousarray(x.float().numpy()))
        return self.model(x)


def calibration_inputs(recipe: Recipe, model: nn.Module, batches: int) -> list[np.ndarray]:
    """The model inputs of the first `batches` validation batches, as evaluation prepares them (fp32, CPU)."""
    task = make_task(recipe.replace(amp="off", channels_last=False, workers=0))
    _, val_set = task.build_datasets()
    info = DistInfo()  # one process, CPU
    recorder = _InputRecorder(model.eval())
    task.eval_begin()
    with torch.inference_mode():
        for index, batch in enumerate(eval_loader(task, val_set, recipe.replace(workers=0), info)):
            if index == batches:
                break
            task.eval_step(recorder, task.to_device(batch, info.device, False))
    if not recorder.inputs:
        raise VisionZooError(f"{recipe.name}: no validation data to calibrate int8 on ({recipe.data})")
    return recorder.inputs


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over recorded inputs."""

    def __init__(self, inputs: list[np.ndarray]) -> None:
        self._items = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._items, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(model: nn.Module, card: ModelCard, recipe: Recipe, output: Path, batches: int) -> Path:
    """Write `output` (`.int8.onnx`): the fp32 export (checked against PyTorch), statically quantized with
    ranges calibrated on `batches` batches; the card, with `export.quantization`, is in its metadata."""
    require("onnx")
    quantization = require("onnxruntime.quantization")
    if not output.name.endswith(".int8.onnx"):
        raise VisionZooError(f"--output {output}: an int8 export is named FILE.int8.onnx")
    inputs = calibration_inputs(recipe, model, batches)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, card, fp32, dynamic_batch=True)
        # onnxruntime's advice: fold BatchNorm into the convolutions and infer (ONNX) shapes first, so every conv's
        # weight and bias are constants that quantize (else biases stay float and the graph keeps fp32 islands)
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        require("onnxruntime.quantization.shape_inference").quant_pre_process(
            str(fp32), str(prepared), skip_symbolic_shape=True
        )
        quantization.quantize_static(
            str(prepared),
            str(quantized),
            _Batches(inputs),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
        )
        card.export |= {
            "quantization": {
                "dtype": "int8",
                "tool": "onnxruntime.quantization.quantize_static",
                "format": "QDQ",
                "per_channel": True,
                "calibration": f"{sum(len(b) for b in inputs)} items ({len(inputs)} batches) of {recipe.data}",
            }
        }
        proto = require("onnx").load(str(quantized))
    save_with_card(proto, output, card)
    return output
