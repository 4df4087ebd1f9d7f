"""ONNX export parity for every registered model, dynamic batch, safetensors + model card, missing extras."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from visionzoo.cli import main
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard, card_from_recipe, card_path, read_card, resolve_card
from visionzoo.export.onnx import (
    RELATIVE_TOLERANCE,
    compare,
    export_onnx,
    read_onnx_card,
    torch_outputs,
)
from visionzoo.export.runtime import OnnxRuntime, onnx_batch_dim
from visionzoo.models import create_model, list_models, model_cfg
from visionzoo.recipes.base import ClassificationRecipe, ProposalRecipe, VideoClassifierRecipe

pytest.importorskip("onnxruntime")

# Video feature backbones (clip inputs) are not exported (yet).
ZOO_MODELS = [n for n in list_models() if not n.startswith("tiny_test") and model_cfg(n).task != "video_features"]


pytestmark = pytest.mark.usefixtures("one_thread")


def small_card(name: str) -> ModelCard:
    """Small inputs so the whole zoo exports in seconds: 32x32 images, 10 classes; features at T=16, 32-d."""
    if name == "bmn":
        return card_from_recipe(ProposalRecipe(model=name, temporal_scale=16, feat_dim=32))
    if name == "video_mlp":
        return card_from_recipe(VideoClassifierRecipe(model=name, num_classes=10, temporal_scale=16, feat_dim=32))
    return card_from_recipe(ClassificationRecipe(model=name, num_classes=10, img_size=32))


def export(*argv: str) -> int:
    """`visionzoo export ...` as a user runs it."""
    return main(["export", *argv])


@pytest.mark.numerics
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_every_model_matches_pytorch_in_onnxruntime_at_batch_1_and_3(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    card = small_card(name)
    model = card.build_model()  # as training builds it (BMN: sparse when run, its GEMM form when exported)
    result = export_onnx(model, card, tmp_path / f"{name}.onnx", dynamic_batch=True)

    assert result.exporter == "torchscript"  # the legacy exporter works for every model in torch 2.13
    assert onnx_batch_dim(result.path) == "batch"
    assert sorted((c["inputs"], c["batch"]) for c in result.checks) == [
        ("random", 1),
        ("random", 3),
        ("real", 1),
        ("real", 3),
    ]
    assert result.max_rel < RELATIVE_TOLERANCE
    stored = read_onnx_card(result.path)
    assert stored.model == name and stored.export["exporter"] == "torchscript" and stored.export["opset"] == 17
    assert stored.model_kwargs == card.model_kwargs


@pytest.mark.numerics
def test_fixed_batch_export_serves_any_batch_by_padding(tmp_path: Path) -> None:
    torch.manual_seed(0)
    card = small_card("cspdarknet53")
    card.model, card.input_shape = "tiny_test_net", [3, 32, 32]
    model = card.build_model()
    result = export_onnx(model, card, tmp_path / "fixed.onnx", dynamic_batch=False)
    assert onnx_batch_dim(result.path) == 1
    assert [c["batch"] for c in result.checks] == [1, 1]
    x = torch.randn(5, 3, 32, 32)
    (got,) = OnnxRuntime(result.path)(x.numpy())
    (expected,) = torch_outputs(model, x)
    assert got.shape == (5, 10)
    assert compare([expected], [got])[1] < RELATIVE_TOLERANCE


@pytest.mark.numerics
def test_dynamo_exporter_keeps_the_batch_dynamic(tmp_path: Path) -> None:
    torch.manual_seed(0)
    card = small_card("cspdarknet53")
    card.model, card.input_shape = "tiny_test_net", [3, 32, 32]
    result = export_onnx(card.build_model(), card, tmp_path / "d.onnx", opset=18, dynamic_batch=True, exporter="dynamo")
    assert result.exporter == "dynamo" and read_onnx_card(result.path).export["opset"] == 18
    assert isinstance(onnx_batch_dim(result.path), str)  # symbolic, not the traced batch of 1
    assert [c["batch"] for c in result.checks] == [1, 3, 1, 3] and result.max_rel < RELATIVE_TOLERANCE


def test_export_fails_above_tolerance(tmp_path: Path) -> None:
    card = small_card("cspdarknet53")
    card.model, card.input_shape = "tiny_test_net", [3, 32, 32]
    model = card.build_model()
    other = card.build_model()
    with torch.no_grad():
        other.fc.weight.mul_(1.001)  # 0.1 % off: far above the fp32 tolerance
    with pytest.raises(VisionZooError, match="above the fp32 tolerance"):
        export_onnx(model, card, tmp_path / "off.onnx", reference_model=other)


def test_relative_difference_is_scaled_by_the_reference_maximum() -> None:
    reference = [np.array([0.0, 2.0, -4.0]), np.array([10.0])]
    candidate = [np.array([0.001, 2.0, -4.002]), np.array([10.0])]
    max_abs, max_rel = compare(reference, candidate)
    assert max_abs == pytest.approx(0.002)
    assert max_rel == pytest.approx(0.002 / 4.0)


def make_run_dir(tmp_path: Path, tiny_cifar: Path) -> Path:
    """A training run's directory as the engine leaves it: config.yaml, summary.json, best.safetensors."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"model": "tiny_test_net", "dataset": "cifar10", "data": str(tiny_cifar), "num_classes": 10}
    config |= {"img_size": 32, "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    summary = {"epochs": 2, "best": {"metric": "top1", "value": 41.5, "epoch": 2}}
    summary |= {"final": {"epoch": 2, "top1": 41.5, "top5": 90.0, "train_loss": 1.9}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    torch.manual_seed(1)
    model = create_model("tiny_test_net", num_classes=10)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(run_dir / "best.safetensors"))
    return run_dir


def test_safetensors_export_round_trips_with_its_model_card(tmp_path: Path, tiny_cifar: Path) -> None:
    run_dir = make_run_dir(tmp_path, tiny_cifar)
    out = tmp_path / "export" / "tiny.safetensors"
    assert export("tiny_test_net", "--checkpoint", str(run_dir / "best.safetensors"),
                                  "--format", "safetensors", "--output", str(out)) == 0  # fmt: skip

    card = read_card(card_path(out))
    assert card.model == "tiny_test_net" and card.task == "classification"
    assert card.model_kwargs == {"num_classes": 10}
    assert card.class_names == [f"c{i}" for i in range(10)]  # from the run's CIFAR-10 batches.meta
    assert card.preprocessing == {
        "resize": "whole",
        "img_size": 32,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    assert card.metrics["best"]["value"] == 41.5 and card.metrics["final"] == {"epoch": 2, "top1": 41.5, "top5": 90.0}

    from safetensors import safe_open

    with safe_open(str(out), "pt") as handle:
        assert handle.metadata()["model"] == "tiny_test_net"
    # The card beside the weights is what later commands read: no run directory next to it any more.
    assert resolve_card("tiny_test_net", out).class_names == card.class_names
    loaded = create_model("tiny_test_net", pretrained=str(out), num_classes=10)
    original = create_model("tiny_test_net", pretrained=str(run_dir / "best.safetensors"), num_classes=10)
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bare_model_name_takes_the_class_count_from_the_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "seven.pt"
    torch.save(create_model("tiny_test_net", num_classes=7).state_dict(), path)
    out = tmp_path / "seven.onnx"
    assert export("tiny_test_net", "--checkpoint", str(path), "--img-size", "40",
                                  "--dynamic-batch", "--output", str(out)) == 0  # fmt: skip
    card = read_onnx_card(out)
    assert card.model_kwargs["num_classes"] == 7 and card.input_shape == [3, 40, 40]
    assert read_card(card_path(out)).export["dynamic_batch"] is True
    (logits,) = OnnxRuntime(out)(np.zeros((2, 3, 40, 40), np.float32))
    assert logits.shape == (2, 7)


def test_bmn_exports_its_gemm_formulation_which_matches_the_sparse_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "bmn_run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": "bmn", "temporal_scale": 12, "feat_dim": 16}))
    torch.manual_seed(0)
    torch.save(create_model("bmn", temporal_scale=12, feat_dim=16).state_dict(), run_dir / "last.pt")
    out = tmp_path / "bmn.onnx"
    assert export("bmn", "--checkpoint", str(run_dir / "last.pt"), "--output", str(out)) == 0
    card = read_onnx_card(out)
    assert card.input_shape == [16, 12] and "bm_impl" not in card.model_kwargs
    x = torch.rand(1, 16, 12)
    got = OnnxRuntime(out)(x.numpy())
    expected = torch_outputs(card.build_model(pretrained=run_dir / "last.pt"), x)  # sparse, the default
    assert [g.shape for g in got] == [(1, 2, 12, 12), (1, 12), (1, 12)]
    assert compare(expected, got)[1] < RELATIVE_TOLERANCE


def test_missing_onnxruntime_ends_with_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.pt"
    torch.save(create_model("tiny_test_net").state_dict(), path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    capsys.readouterr()
    assert export("tiny_test_net", "--checkpoint", str(path)) == 2
    (message,) = capsys.readouterr().err.strip().splitlines()
    assert "onnxruntime is not installed" in message and "visionzoo[onnx]" in message
    assert not (tmp_path / "w.onnx").exists()
