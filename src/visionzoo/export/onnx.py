"""ONNX export that is checked before it is trusted: onnx.checker, then onnxruntime against PyTorch.

Exporter: the legacy TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) first. In torch 2.13 it
still exists, exports every model of the zoo (BMN picks its GEMM formulation itself when exported: the sparse
CSR product has no ONNX operator) in a few seconds, and its `dynamic_axes` give a truly dynamic batch. The
dynamo exporter (`dynamo=True`, the default since torch 2.9) is the fallback when the legacy one fails or is
gone; it is slower and has exported dynamic batches as fixed (pytorch/pytorch#157621). Whichever ran is written
into the model's metadata with the opset, and a dynamic batch is verified by actually running batch 1 and N.

Parity: relative difference = max|onnxruntime - torch| / max|torch| per output (the largest over outputs),
i.e. the error measured against the output's scale, so logits near zero do not blow it up; fp32 passes
below 1e-4.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from visionzoo.data.transforms import normalize
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ONNX_CARD_KEY, ModelCard
from visionzoo.export.runtime import INPUT_NAME, onnx_batch_dim, onnx_session, require
from visionzoo.files import parse_json, write_bytes

DEFAULT_OPSET = 17
RELATIVE_TOLERANCE = 1e-4  # fp32


def output_names(card: ModelCard) -> list[str]:
    if card.task == "features":
        return ["features"]
    return ["confidence_map", "start", "end"] if card.task in ("proposals", "windowed_proposals") else ["logits"]


def example_inputs(card: ModelCard, batch: int, kind: str = "random", seed: int = 0) -> torch.Tensor:
    """A batch shaped like the model's real inputs.

    `random`: standard normal. `real`: what real data looks like after preprocessing: uint8 images normalised
    by the card's mean and std (values about -2..2.6: classifiers, an image backbone), or non-negative values
    for every other input (BMN's snippet features are post-ReLU TSN scores; clips are normalised already).
    """
    generator = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randn(batch, *card.input_shape, generator=generator)
    if len(card.input_shape) != 3 or "mean" not in card.preprocessing:
        return torch.rand(batch, *card.input_shape, generator=generator) * 2.0
    images = torch.randint(0, 256, (batch, *card.input_shape), dtype=torch.uint8, generator=generator)
    return normalize(images, card.preprocessing["mean"], card.preprocessing["std"])


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "torchscript" (legacy, dynamo=False) or "dynamo"
    opset: int
    dynamic_batch: bool
    checks: list[dict[str, Any]]  # one per verification run: inputs, batch, max_abs, max_rel

    @property
    def max_rel(self) -> float:
        return max(c["max_rel"] for c in self.checks)


def _export_legacy(model: nn.Module, x: torch.Tensor, names: list[str], opset: int, dynamic: bool):
    import io

    onnx = require("onnx")
    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the legacy exporter
        torch.onnx.export(
            model,
            (x,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=names,
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, x: torch.Tensor, names: list[str], opset: int, dynamic: bool):
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=names,
            opset_version=opset,
            dynamic_shapes=shapes,
            verbose=False,
        )
    return program.model_proto


EXPORTERS = {"torchscript": _export_legacy, "dynamo": _export_dynamo}


def save_with_card(proto, path: Path, card: ModelCard) -> None:
    """Write the model with the card (exporter and opset included) in its metadata_props, then check the file."""
    onnx = require("onnx")
    del proto.metadata_props[:]
    for key, value in {ONNX_CARD_KEY: json.dumps(card.to_dict()), "visionzoo.model": card.model}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "visionzoo"
    write_bytes(path, proto.SerializeToString())  # models over 2 GB would need external data: none in the zoo
    onnx.checker.check_model(str(path), full_check=True)


def read_onnx_card(path: str | Path) -> ModelCard:
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise VisionZooError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any decoding failure is a bad file for the user
        raise VisionZooError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if ONNX_CARD_KEY not in props:
        raise VisionZooError(f"{path}: no visionzoo model card in its metadata (export it with visionzoo export)")
    return ModelCard.from_dict(parse_json(props[ONNX_CARD_KEY], str(path), "model card"), str(path))


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> tuple[float, float]:
    """(max abs, max relative) difference over outputs; relative = max|a - b| / max|b| of each output."""
    max_abs = max_rel = 0.0
    for ref, out in zip(reference, candidate, strict=True):
        if ref.shape != out.shape:
            raise VisionZooError(f"onnxruntime output shape {out.shape} differs from PyTorch's {ref.shape}")
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(float(np.abs(ref).max()), np.finfo(np.float32).tiny))
    return max_abs, max_rel


def torch_outputs(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.inference_mode():
        out = model(x)
    return [t.float().numpy() for t in (out if isinstance(out, tuple) else (out,))]


def verify_onnx(
    path: Path, reference_model: nn.Module, card: ModelCard, batches: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Run the file in onnxruntime on random and real-looking inputs at each batch size; diffs to PyTorch."""
    session = onnx_session(path)
    checks = []
    for kind in ("random", "real"):
        for batch in batches:
            x = example_inputs(card, batch, kind, seed=batch)
            expected = torch_outputs(reference_model, x)
            got = session.run(None, {INPUT_NAME: x.numpy()})
            max_abs, max_rel = compare(expected, got)
            checks.append({"inputs": kind, "batch": batch, "max_abs": max_abs, "max_rel": max_rel})
    return checks


def export_onnx(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    exporter: str = "auto",
    check_batch: int = 3,
    reference_model: nn.Module | None = None,
) -> ExportResult:
    """Export `model` (eval mode, built from `card`) to `path`, check it and compare it with PyTorch.

    `reference_model` is what onnxruntime is compared with (default: `model` itself).
    Raises VisionZooError when no exporter works or the difference exceeds RELATIVE_TOLERANCE.
    """
    require("onnx")
    require("onnxruntime")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = example_inputs(card, 1)
    names = output_names(card)
    order = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    failures = []
    for name in order:
        try:
            proto = EXPORTERS[name](model, x, names, opset, dynamic_batch)
            break
        except Exception as err:  # noqa: BLE001 - an exporter's failure is reported and the next one tried
            failures.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
    else:
        raise VisionZooError(f"{path}: ONNX export of {card.model} failed ({'; '.join(failures)})")
    card.export |= {"format": "onnx", "exporter": name, "opset": opset, "dynamic_batch": dynamic_batch}
    save_with_card(proto, path, card)
    batch_dim = onnx_batch_dim(path)
    if dynamic_batch and isinstance(batch_dim, int):
        raise VisionZooError(f"{path}: exported with a fixed batch {batch_dim} although --dynamic-batch was asked")
    batches = (1, check_batch) if dynamic_batch else (1,)
    checks = verify_onnx(path, reference_model if reference_model is not None else model, card, batches)
    result = ExportResult(path, name, opset, dynamic_batch, checks)
    if result.max_rel > RELATIVE_TOLERANCE:
        raise VisionZooError(
            f"{path}: onnxruntime differs from PyTorch by {result.max_rel:.2e} (relative, max|a-b|/max|b|), "
            f"above the fp32 tolerance {RELATIVE_TOLERANCE:g}"
        )
    return result
