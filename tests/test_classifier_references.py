"""GhostNet, ResNet-50 + BAM and CSPDarknet53 against literal transcriptions of their reference code
(benchmarks/*_reference.py): state-dict keys and shapes, parameter counts (classifiers.md section 5), the init
each reference applies, and eval-mode outputs with the reference's weights loaded into ours."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
from conftest import randomise
from numerics import FP32, assert_close

from benchmarks.cspdarknet_reference import cspdarknet53 as reference_cspdarknet53
from benchmarks.ghostnet_reference import ghostnet as reference_ghostnet
from benchmarks.resnet_bam_reference import ResidualNet
from visionzoo.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "ghostnet_100": lambda: reference_ghostnet(),
    "ghostnet_050": lambda: reference_ghostnet(width=0.5),
    "resnet50_bam": lambda: ResidualNet("ImageNet", 50, 1000, "BAM"),
    "cspdarknet53": lambda: reference_cspdarknet53(),
}
PARAMS = {"ghostnet_100": 5_182_508, "ghostnet_050": 2_587_292, "resnet50_bam": 25_915_099, "cspdarknet53": 27_642_184}
# Small inputs, non-square where the reference allows it. The BAM reference needs 224: its head is a fixed
# AvgPool2d(7) (7x7 final map) and its channel gate pools with avg_pool2d(x, H), which assumes square maps.
INPUT_SIZES = {"ghostnet_100": (64, 48), "ghostnet_050": (64, 48), "resnet50_bam": (224, 224), "cspdarknet53": (64, 48)}

_built: dict[str, tuple[nn.Module, nn.Module]] = {}


def _fresh_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """(reference, ours) as their constructors leave them; built once per module, never modified."""
    if name not in _built:
        torch.manual_seed(0)
        reference = REFERENCES[name]()
        torch.manual_seed(1)
        _built[name] = reference, create_model(name)
    return _built[name]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_state_dict_keys_and_shapes_equal_reference(name: str) -> None:
    reference, ours = _fresh_pair(name)
    theirs, own = reference.state_dict(), ours.state_dict()
    assert sorted(own) == sorted(theirs)  # num_batches_tracked included: both models have it
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_parameter_counts(name: str) -> None:
    reference, ours = _fresh_pair(name)
    assert sum(p.numel() for p in reference.parameters()) == PARAMS[name]
    assert sum(p.numel() for p in ours.parameters()) == PARAMS[name]
    if name == "resnet50_bam":
        bams = [reference.bam1, reference.bam2, reference.bam3]
        assert [sum(p.numel() for p in bam.parameters()) for bam in bams] == [17_361, 68_513, 272_193]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_init_equals_reference_init(name: str) -> None:
    """Constants equal exactly (BN ones and zeros, zeroed biases, zero-init BN weights); random tensors have the
    reference's mean and standard deviation (kaiming fan_in vs fan_out, normal vs PyTorch's default uniform)."""
    reference, ours = _fresh_pair(name)
    own = ours.state_dict()
    for key, theirs in reference.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        mine = own[key]
        if bool((theirs == theirs.flatten()[0]).all()):
            assert torch.equal(mine, theirs), f"{key}: the reference sets it to {theirs.flatten()[0].item()}"
            continue
        if theirs.numel() < 32:
            continue
        n, std = theirs.numel(), float(theirs.std())
        assert float(mine.std()) == pytest.approx(std, rel=0.02 + 7 / math.sqrt(2 * n)), f"{key}: std"
        assert abs(float(mine.mean()) - float(theirs.mean())) < 7 * std / math.sqrt(n), f"{key}: mean"


@pytest.mark.numerics
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_outputs_equal_reference_with_its_weights(name: str) -> None:
    reference, ours = (copy.deepcopy(m) for m in _fresh_pair(name))
    randomise(reference, seed=2)
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    ours.eval()
    x = torch.randn(2, 3, *INPUT_SIZES[name], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
        if name == "cspdarknet53":
            assert_close(ours.forward_features(x), reference.forward_features(x), FP32, "features")
    assert actual.shape == (2, 1000)
    assert bool(torch.isfinite(expected).all())
    assert_close(actual, expected, FP32, "logits")
