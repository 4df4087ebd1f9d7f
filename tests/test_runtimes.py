"""Every runtime agrees with PyTorch fp32 within its dtype's tolerance; `auto` is a rule; conversions are cached."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_cifar
from numerics import BF16, FP32, assert_close
from safetensors.torch import save_file

from visionzoo.cli import main
from visionzoo.engine.precision import resolve_amp
from visionzoo.errors import VisionZooError
from visionzoo.export import onnx as onnx_export
from visionzoo.export.model_card import ModelCard, card_from_recipe
from visionzoo.export.onnx import example_inputs, torch_outputs
from visionzoo.export.runtime import auto_runtime, load_runtime
from visionzoo.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _card(kind: str) -> ModelCard:
    if kind == "bmn":
        return card_from_recipe(get_recipe("bmn_anet").replace(temporal_scale=16, feat_dim=32))
    return card_from_recipe(get_recipe("cspdarknet53_cifar10").replace(model="tiny_test_net"))


def _checkpoint(card: ModelCard, folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / f"{card.model}.safetensors"
    save_file({k: v.contiguous() for k, v in card.build_model().state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("kind", ["tiny", "bmn"])
@pytest.mark.parametrize(
    ("runtime", "dtype", "tolerance"),
    [
        ("torch", torch.float32, FP32),
        ("compiled", torch.float32, FP32),
        ("onnxruntime", torch.float32, FP32),
        ("openvino", torch.float32, FP32),
        ("torch", torch.bfloat16, BF16),
        ("openvino", torch.bfloat16, BF16),
    ],
)
def test_runtime_agrees_with_pytorch_fp32(kind: str, runtime: str, dtype: torch.dtype, tolerance: float, tmp_path):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    card = _card(kind)
    checkpoint = _checkpoint(card, tmp_path)
    x = example_inputs(card, 3, "real")
    expected = torch_outputs(card.build_model(pretrained=checkpoint), x)
    run = load_runtime(card, checkpoint, runtime, dtype)
    for got, want in zip(run(x.numpy()), expected, strict=True):
        assert_close(got, want, tolerance, f"{kind} {run.describe()}")


def test_auto_is_a_rule_on_the_model_kind_the_device_and_the_precision() -> None:
    cpu, fp32, bf16 = torch.device("cpu"), torch.float32, torch.bfloat16
    everything, only_onnxruntime, nothing = (
        (lambda module: True),
        (lambda module: module == "onnxruntime"),
        (lambda module: False),
    )
    tiny, bmn = _card("tiny"), _card("bmn")
    assert auto_runtime(tiny, fp32, cpu, everything)[0] == auto_runtime(tiny, bf16, cpu, everything)[0] == "openvino"
    assert auto_runtime(tiny, fp32, cpu, only_onnxruntime)[0] == "onnxruntime"
    assert auto_runtime(tiny, bf16, cpu, only_onnxruntime)[0] == "torch"  # onnxruntime has no bf16
    assert auto_runtime(tiny, fp32, cpu, nothing)[0] == "torch"
    assert auto_runtime(bmn, fp32, cpu, everything)[0] == "torch"
    assert auto_runtime(tiny, fp32, torch.device("cuda"), everything)[0] == "torch"
    video_mlp = card_from_recipe(get_recipe("anet_video_classifier"))
    assert auto_runtime(video_mlp, bf16, cpu, everything)[0] == "onnxruntime"
    assert auto_runtime(video_mlp, bf16, cpu, nothing)[0] == "torch"


def test_conversion_is_cached_by_weights_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    card = _card("tiny")
    checkpoint = _checkpoint(card, tmp_path)
    first = load_runtime(card, checkpoint, "onnxruntime")
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **kw: pytest.fail("converted twice"))
    assert load_runtime(card, checkpoint, "onnxruntime").path == first.path
    other = tmp_path / "other.safetensors"
    save_file({k: v + 1 for k, v in card.build_model(pretrained=checkpoint).state_dict().items()}, str(other))
    with pytest.raises(pytest.fail.Exception, match="converted twice"):
        load_runtime(card, other, "onnxruntime")


def test_an_onnx_file_does_not_run_in_torch(tmp_path: Path) -> None:
    card = _card("tiny")
    onnx_file = load_runtime(card, _checkpoint(card, tmp_path), "onnxruntime").path
    with pytest.raises(VisionZooError, match="needs a checkpoint"):
        load_runtime(card, onnx_file, "torch")


def test_eval_in_another_runtime_gives_the_same_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = make_tiny_cifar(tmp_path / "cifar"), tmp_path / "run"
    argv = ["--model", "tiny_test_net", "--data", str(data), "-j", "0", "--amp", "off"]
    assert main(["train", "cspdarknet53_cifar10", "--output", str(run), "--epochs", "1", "-b", "8", *argv]) == 0
    metrics = {}
    for runtime in ("torch", "onnxruntime", "auto"):
        capsys.readouterr()
        eval_argv = ["eval", "cspdarknet53_cifar10", "--checkpoint", str(run / "last.safetensors"), *argv]
        assert main([*eval_argv, "--runtime", runtime, "--json"]) == 0
        metrics[runtime] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["torch"]["top1"] == metrics["onnxruntime"]["top1"] == metrics["auto"]["top1"]
    assert metrics["onnxruntime"]["eval_loss"] == pytest.approx(metrics["torch"]["eval_loss"], rel=1e-4)


def test_bench_auto_says_what_it_picked(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--runtime", "auto", "-b", "2"]
    assert main([*argv, "--steps", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    bf16 = resolve_amp("auto", torch.device("cpu")).resolved == "bf16"
    if importlib.util.find_spec("openvino") is not None:
        assert (row["runtime"], row["dtype"]) == ("auto: openvino", "bf16" if bf16 else "fp32")
    else:
        assert (row["runtime"], row["dtype"]) == (("auto: torch", "bf16") if bf16 else ("auto: onnxruntime", "fp32"))


_NO_COMPILER = """
import sys
from pathlib import Path
import torch._inductor.config as inductor
sys.path.insert(0, "tests")
import conftest  # registers tiny_test_net
from test_runtimes import _card, _checkpoint
from visionzoo.engine.precision import resolve_amp
from visionzoo.errors import VisionZooError
from visionzoo.export.onnx import example_inputs
from visionzoo.export.runtime import load_runtime
inductor.cpp.cxx = (sys.argv[1] + "/no-such-g++",)
inductor.fx_graph_cache = False  # a cached kernel would need no compiler
card = _card("tiny")
run = load_runtime(card, _checkpoint(card, Path(sys.argv[1])), "compiled")
try:
    run(example_inputs(card, 2, "real").numpy())
except VisionZooError as err:
    print(err)
"""


def test_compiled_without_a_working_compiler_says_so_in_one_line(tmp_path: Path) -> None:
    """In a process of its own: a failed inductor build stays in the process's caches and fails later compiles."""
    import subprocess
    import sys

    found = subprocess.run([sys.executable, "-c", _NO_COMPILER, str(tmp_path)], capture_output=True, text=True,
                           cwd=Path(__file__).parents[1], timeout=300)  # fmt: skip
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("--runtime compiled is unavailable here: "), (
        found.stdout + found.stderr
    )
