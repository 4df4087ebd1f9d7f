"""`visionzoo export --quantize int8`: a calibrated static int8 ONNX that runs, agrees with fp32 and says int8."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_cifar
from numerics import assert_close

from visionzoo.cli import main
from visionzoo.data.cifar10 import Cifar10
from visionzoo.data.transforms import normalize
from visionzoo.export import quantize
from visionzoo.export.model_card import card_from_recipe, card_path
from visionzoo.export.onnx import example_inputs, read_onnx_card, torch_outputs
from visionzoo.export.runtime import OnnxRuntime, load_runtime
from visionzoo.recipes import get_recipe

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_int8_export_runs_agrees_with_fp32_and_says_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = make_tiny_cifar(tmp_path / "cifar"), tmp_path / "run"
    argv = ["--model", "tiny_test_net", "--data", str(data), "-j", "0", "--amp", "off"]
    assert main(["train", "cspdarknet53_cifar10", "--output", str(run), "--epochs", "2", "-b", "8", *argv]) == 0
    weights = run / "last.safetensors"
    assert main(["export", "tiny_test_net", "--checkpoint", str(weights), "--quantize", "int8",
                 "--calibration-batches", "2"]) == 0  # fmt: skip
    int8 = run / "last.int8.onnx"
    card = read_onnx_card(int8)
    assert card.export["quantization"]["dtype"] == "int8" and "16 items (2 batches)" in capsys.readouterr().out
    assert json.loads(card_path(int8).read_text())["export"]["quantization"]["dtype"] == "int8"

    test = Cifar10(data, train=False)
    images = torch.stack([test[(i, 0)][0] for i in range(len(test))])
    x = normalize(images, card.preprocessing["mean"], card.preprocessing["std"]).numpy()
    (fp32,) = load_runtime(card, weights, "torch")(x)
    quantized = OnnxRuntime(int8)
    (logits,) = quantized(x)
    assert quantized.describe() == "onnxruntime int8"
    agree = float((logits.argmax(1) == fp32.argmax(1)).mean())
    assert agree >= 0.8, f"int8 top-1 agrees with fp32 on {agree:.0%} of {len(x)} images"
    assert np.abs(logits - fp32).max() > 0  # really another computation, not the fp32 graph

    assert main(["eval", "cspdarknet53_cifar10", "--onnx", str(int8), *argv, "--json"]) == 0
    assert "top1" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_runs_an_int8_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`bench --onnx FILE.int8.onnx` times the file itself (in OpenVINO where installed, else onnxruntime: auto's
    pick for an ONNX file)."""
    data, run = make_tiny_cifar(tmp_path / "cifar"), tmp_path / "run"
    argv = ["--model", "tiny_test_net", "--data", str(data), "-j", "0", "--amp", "off"]
    assert main(["train", "cspdarknet53_cifar10", "--output", str(run), "--epochs", "1", "-b", "8", *argv]) == 0
    assert main(["export", "tiny_test_net", "--checkpoint", str(run / "last.safetensors"), "--quantize", "int8"]) == 0
    capsys.readouterr()
    bench = ["bench", "cspdarknet53_cifar10", *argv, "--onnx", str(run / "last.int8.onnx"), "--steps", "1", "--json"]
    assert main(bench) == 0
    (row,) = json.loads(capsys.readouterr().out)
    picked = "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"
    assert (row["runtime"], row["dtype"], row["input"]) == (f"auto: {picked}", "int8", "3x32x32")


def test_bmn_quantizes_and_stays_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BMN's graph (Conv3d, the BM GEMM, sigmoids) quantizes: without the pre-processing, onnxruntime's quantizer
    failed on it (KeyError on a conv bias)."""
    recipe = get_recipe("bmn_anet").replace(temporal_scale=16, feat_dim=32, amp="off")
    card = card_from_recipe(recipe)
    torch.manual_seed(0)
    model = card.build_model()
    monkeypatch.setattr(quantize, "calibration_inputs", lambda *a: [example_inputs(card, 4, "real").numpy()])
    int8 = quantize.quantize_int8(model, card, recipe, tmp_path / "bmn.int8.onnx", 1)
    x = example_inputs(card, 3, "real", seed=5)
    for got, want in zip(OnnxRuntime(int8)(x.numpy()), torch_outputs(model, x), strict=True):
        assert_close(got, want, 5e-2, "BMN int8 vs fp32")
