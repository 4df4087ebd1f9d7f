"""GhostNet and ResNet-50 (+BAM): sizes, key layout, shapes and weight loading against the reference values
in classifiers.md (computed layer by layer; they equal timm's and osmr/imgclsmob's published counts)."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from numerics import assert_close

import visionzoo.models.ghostnet  # noqa: F401  (registers the models)
import visionzoo.models.resnet_bam  # noqa: F401
from visionzoo.engine.flops import count_macs, count_params
from visionzoo.errors import VisionZooError
from visionzoo.models.registry import create_model

PARAMS = {
    "ghostnet_050": 2_587_292,
    "ghostnet_100": 5_182_508,
    "ghostnet_130": 7_358_820,
    "resnet50": 25_557_032,
    "resnet50_bam": 25_915_099,
}
MACS_224 = {
    "ghostnet_050": 42.33e6,
    "ghostnet_100": 141.15e6,
    "ghostnet_130": 227.00e6,
    "resnet50": 4.089e9,
    "resnet50_bam": 4.171e9,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resnet50_bam() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet50_bam").eval()


def _randomise_bn_statistics(model: nn.Module) -> None:
    """Fresh BNs are the identity in eval mode; random statistics make loading mistakes visible in outputs."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)


def _on_meta(model: nn.Module) -> nn.Module:
    """Shapes and MAC counts need no numbers: the meta device runs the 224x224 forwards without computing."""
    return model.to("meta").eval()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_count_and_macs(name: str) -> None:
    model = create_model(name)
    assert count_params(model) == PARAMS[name]
    macs = count_macs(_on_meta(model), torch.empty(1, 3, 224, 224, device="meta"))
    assert macs == pytest.approx(MACS_224[name], rel=5e-3)


@pytest.mark.parametrize(("name", "shape"), [("ghostnet_100", (960, 7, 7)), ("resnet50_bam", (2048, 7, 7))])
def test_forward_features_shape_at_224(name: str, shape: tuple[int, int, int]) -> None:
    model = _on_meta(create_model(name))
    assert model.forward_features(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, *shape)


def test_bam_module_sizes(resnet50_bam: nn.Module) -> None:
    assert [count_params(getattr(resnet50_bam, f"bam{i}")) for i in (1, 2, 3)] == [17_361, 68_513, 272_193]
    x = torch.randn(2, 256, 12, 20)  # non-square: the reference's avg_pool2d(x, H) would break here
    with torch.no_grad():
        assert resnet50_bam.bam1(x).shape == x.shape


@pytest.mark.numerics
def test_bam_matches_reference_formula(resnet50_bam: nn.Module) -> None:
    """The code's attention: x * (1 + sigmoid(Mc * Ms)), Mc pooled with the reference's avg_pool2d(x, H)."""
    bam = resnet50_bam.bam2
    x = torch.randn(2, 512, 14, 14)
    with torch.no_grad():
        channel = bam.channel_att.gate_c(F.avg_pool2d(x, 14, stride=14).flatten(1))[:, :, None, None].expand_as(x)
        spatial = bam.spatial_att.gate_s(x).expand_as(x)
        expected = (1 + torch.sigmoid(channel * spatial)) * x
        assert_close(bam(x), expected)


def test_ghostnet_state_dict_layout() -> None:
    state = create_model("ghostnet_100").state_dict()
    assert len(state) == 512
    assert sum(not k.endswith("num_batches_tracked") for k in state) == 432
    expected_shapes = {
        "conv_stem.weight": (16, 3, 3, 3),
        "bn1.running_var": (16,),
        "blocks.0.0.ghost1.primary_conv.0.weight": (8, 16, 1, 1),
        "blocks.0.0.ghost1.cheap_operation.0.weight": (8, 1, 3, 3),
        "blocks.0.0.ghost2.primary_conv.1.weight": (8,),
        "blocks.1.0.conv_dw.weight": (48, 1, 3, 3),
        "blocks.1.0.bn_dw.running_mean": (48,),
        "blocks.1.0.shortcut.0.weight": (16, 1, 3, 3),
        "blocks.1.0.shortcut.2.weight": (24, 16, 1, 1),
        "blocks.1.0.shortcut.3.num_batches_tracked": (),
        "blocks.3.0.se.conv_reduce.weight": (20, 72, 1, 1),
        "blocks.3.0.se.conv_expand.bias": (72,),
        "blocks.6.3.shortcut.2.weight": (112, 80, 1, 1),
        "blocks.7.0.conv_dw.weight": (672, 1, 5, 5),
        "blocks.8.3.se.conv_reduce.weight": (240, 960, 1, 1),
        "blocks.9.0.conv.weight": (960, 160, 1, 1),
        "blocks.9.0.bn1.weight": (960,),
        "conv_head.weight": (1280, 960, 1, 1),
        "conv_head.bias": (1280,),
        "classifier.weight": (1000, 1280),
        "classifier.bias": (1000,),
    }
    assert {k: tuple(state[k].shape) for k in expected_shapes} == expected_shapes
    reduced = [v.shape[0] for k, v in state.items() if k.endswith("se.conv_reduce.weight")]
    assert reduced == [20, 32, 120, 168, 168, 240, 240]
    shortcuts = sorted({k.rsplit(".shortcut", 1)[0] for k in state if ".shortcut." in k})
    assert shortcuts == ["blocks.1.0", "blocks.3.0", "blocks.5.0", "blocks.6.3", "blocks.7.0"]
    assert not any(".2.weight" in k for k in state if "primary_conv" in k or "cheap_operation" in k)


def test_ghostnet_shapes_and_head() -> None:
    model = create_model("ghostnet_100").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 160, 128))  # the reference's 320x256 check, halved
        assert features.shape == (2, 960, 5, 4)
        assert model.forward_head(features).shape == (2, 1000)
        assert model.forward_head(features, pre_logits=True).shape == (2, 1280)
    assert model.num_features == 960 and model.pretrained_cfg.classifier == "classifier"
    small = create_model("ghostnet_050", num_classes=7, in_chans=1).eval()
    with torch.no_grad():
        assert small(torch.randn(2, 1, 64, 96)).shape == (2, 7)


def test_ghostnet_dropout_is_applied_before_the_classifier_in_training_only() -> None:
    torch.manual_seed(0)
    model = create_model("ghostnet_050", drop_rate=0.5)
    features = torch.rand(4, model.num_features, 2, 2)
    with torch.no_grad():
        kept = model.eval().forward_head(features, pre_logits=True)
        dropped = model.train().forward_head(features, pre_logits=True)
    mask = dropped != 0
    assert 0.3 < (~mask & (kept != 0)).float().sum() / (kept != 0).float().sum() < 0.7
    torch.testing.assert_close(dropped[mask], kept[mask] / 0.5)


def test_resnet_shapes(resnet50_bam: nn.Module) -> None:
    with torch.no_grad():
        # Non-square and not 224: the reference's AvgPool2d(7) and avg_pool2d(x, H) could not run this.
        features = resnet50_bam.forward_features(torch.randn(2, 3, 96, 160))
        assert features.shape == (2, 2048, 3, 5)
        assert resnet50_bam.forward_head(features).shape == (2, 1000)
    assert resnet50_bam.num_features == 2048 and resnet50_bam.pretrained_cfg.classifier == "fc"


@pytest.mark.parametrize(("name", "pre_logits_dim"), [("ghostnet_050", 1280), ("resnet50_bam", 2048)])
def test_reset_classifier(name: str, pre_logits_dim: int) -> None:
    model = create_model(name).eval()
    model.reset_classifier(10)
    assert model.num_classes == 10 and model.get_classifier().out_features == 10
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        model.reset_classifier(0)
        pre_logits = model(x)
        assert pre_logits.shape == (2, pre_logits_dim) and isinstance(model.get_classifier(), nn.Identity)
        assert torch.equal(pre_logits, model.forward_head(model.forward_features(x), pre_logits=True))


@pytest.mark.parametrize("name", ["ghostnet_050", "resnet50_bam"])
def test_authors_checkpoint_format_round_trip(name: str, tmp_path) -> None:
    """The authors' files, saved before PyTorch 0.4.1 so without `num_batches_tracked`: BAM's is
    {"state_dict": {"module." + key: ...}} from DataParallel, GhostNet's `state_dict_73.98.pth` a bare state dict."""
    model = create_model(name).eval()
    _randomise_bn_statistics(model)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "checkpoint.pth"
    if name == "resnet50_bam":
        state = {"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 76.86}
    torch.save(state, path)
    loaded = create_model(name, pretrained=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_torchvision_resnet50_into_resnet50_bam(tmp_path, caplog) -> None:
    plain = create_model("resnet50")
    _randomise_bn_statistics(plain)
    path = tmp_path / "resnet50.pth"
    torch.save(plain.state_dict(), path)
    torch.manual_seed(1)
    fresh = create_model("resnet50_bam")
    torch.manual_seed(1)
    with caplog.at_level(logging.INFO, logger="visionzoo"):
        loaded = create_model("resnet50_bam", pretrained=str(path))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("visionzoo")] == [
        "loaded a plain ResNet-50 into resnet50_bam: backbone from the file, BAM modules left at their init"
    ]
    plain_state, fresh_state = plain.state_dict(), fresh.state_dict()
    for key, value in loaded.state_dict().items():
        expected = fresh_state[key] if key.startswith(("bam1.", "bam2.", "bam3.")) else plain_state[key]
        assert torch.equal(value, expected), key


def test_checkpoints_of_other_models_are_refused(tmp_path) -> None:
    ghost = tmp_path / "ghostnet.pth"
    torch.save(create_model("ghostnet_050").state_dict(), ghost)
    with pytest.raises(VisionZooError, match="do not fit"):
        create_model("resnet50_bam", pretrained=str(ghost))
    bam_state = create_model("resnet50_bam").state_dict()
    with_bam = tmp_path / "resnet50_bam.pth"
    torch.save(bam_state, with_bam)
    with pytest.raises(VisionZooError, match="unexpected"):
        create_model("resnet50", pretrained=str(with_bam))
    partial = tmp_path / "partial.pth"  # a backbone missing a layer is not a plain ResNet-50
    torch.save({k: v for k, v in bam_state.items() if not k.startswith(("bam", "layer4.2."))}, partial)
    with pytest.raises(VisionZooError, match="missing"):
        create_model("resnet50_bam", pretrained=str(partial))
