"""Video feature backbones against their reference code: I3D (piergiaj/pytorch-i3d), R(2+1)D (torchvision,
TSP) from literal transcriptions in benchmarks/, VideoMAE against transformers itself.

Each reference's random weights are saved in its published layout (piergiaj's bare state dict, torchvision's,
TSP's training checkpoint) and must load through `create_model(name, pretrained=FILE)` unchanged, and give the
reference's outputs on the same clip."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import randomise
from numerics import FP32, assert_close

from benchmarks import i3d_reference, r2plus1d_reference
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model, model_cfg

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def i3d_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, nn.Module]]:
    """piergiaj's `rgb_imagenet.pt` (saved before PyTorch 0.4.1: no BN counters) and `flow_imagenet.pt` (with
    them), each beside the reference model that made it."""
    folder = tmp_path_factory.mktemp("i3d")
    files = {}
    for seed, (stream, chans) in enumerate((("rgb", 3), ("flow", 2))):
        torch.manual_seed(seed)
        reference = randomise(i3d_reference.InceptionI3d(in_channels=chans), seed)
        state = reference.state_dict()
        if stream == "rgb":
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        path = folder / f"{stream}_imagenet.pt"
        torch.save(state, path)
        files[stream] = path, reference
    return files


@pytest.fixture(scope="module")
def tsp_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """TSP's training checkpoint: {"model": {"features." + backbone key, "fc1.*", "fc2.*"}, optimizer, args}."""
    torch.manual_seed(2)
    reference = randomise(r2plus1d_reference.TSPModel(r2plus1d_reference.tsp_r2plus1d_34(), [200, 2]), 2)
    path = tmp_path_factory.mktemp("tsp") / "r2plus1d_34-tsp_on_activitynet-max_gvf-epoch_5-0d2cf854.pth"
    args = argparse.Namespace(backbone="r2plus1d_34", lr=0.0001, label_columns=["action-label", "temporal-region"])
    checkpoint = {"model": reference.state_dict(), "optimizer": {"state": {}}, "lr_scheduler": {}, "epoch": 5}
    torch.save(checkpoint | {"args": args}, path)
    return path, reference


@pytest.mark.numerics
@pytest.mark.parametrize(("stream", "frames"), [("rgb", 16), ("flow", 24)])
def test_i3d_loads_piergiaj_file_and_matches_reference(
    i3d_files: dict[str, tuple[Path, nn.Module]], stream: str, frames: int
) -> None:
    """The protocol's 16 frames give the reference one position; 24 give it two, which ours averages."""
    path, reference = i3d_files[stream]
    ours = create_model(f"i3d_{stream}", pretrained=path).eval()
    clip = torch.randn(1, 3 if stream == "rgb" else 2, frames, 193, 200)  # the smallest size the reference takes
    with torch.no_grad():
        expected_logits = reference(clip)  # [B, 400, T']
        expected_features = reference.extract_features(clip).flatten(2)  # [B, 1024, T']
        features = ours.forward_features(clip)
        logits, pooled = ours.forward_head(features), ours.forward_head(features, pre_logits=True)
    assert expected_logits.shape[-1] == frames // 8 - 1
    assert pooled.shape == (1, 1024) and logits.shape == (1, 400)
    assert_close(pooled, expected_features.mean(-1), FP32, "pre-logits features")
    assert_close(logits, expected_logits.mean(-1), FP32, "logits")


@pytest.mark.numerics
def test_i3d_same_padding_matches_reference_on_odd_small_clips(
    i3d_files: dict[str, tuple[Path, nn.Module]],
) -> None:
    """Odd sizes take every branch of TF 'SAME' padding (uneven front/back, size not a multiple of the stride);
    the reference's head needs 193 px, but its end points run on any clip."""
    path, reference = i3d_files["rgb"]
    ours = create_model("i3d_rgb", pretrained=path).eval()
    clip = torch.randn(2, 3, 9, 37, 50)
    with torch.no_grad():
        expected = clip
        for end_point in reference.VALID_ENDPOINTS:
            if end_point in reference.end_points:
                expected = reference._modules[end_point](expected)
        features = ours.forward_features(clip)
        pooled = ours.forward_head(features, pre_logits=True)
    assert features.shape == (2, 1024, 2, 2, 2)  # ceil(9 / 8), ceil(37 / 32), ceil(50 / 32)
    assert_close(features, expected, FP32, "Mixed_5c")
    assert_close(pooled, expected.mean(dim=(2, 3, 4)), FP32, "pooled")  # window cut to the 2x2x2 map


def test_i3d_charades_file_loads_with_its_157_classes_or_a_fresh_head(tmp_path: Path) -> None:
    """piergiaj's `rgb_charades.pt`: the 157-way logits load with num_classes=157; without, a fresh 400-way head
    replaces them and the backbone still loads."""
    torch.manual_seed(6)
    reference = i3d_reference.InceptionI3d(num_classes=157, in_channels=3)
    path = tmp_path / "rgb_charades.pt"
    torch.save(reference.state_dict(), path)
    charades = create_model("i3d_rgb", pretrained=path, num_classes=157)
    assert torch.equal(charades.logits.conv3d.weight, reference.logits.conv3d.weight)
    kinetics = create_model("i3d_rgb", pretrained=path)
    assert kinetics.logits.conv3d.weight.shape[0] == 400
    assert torch.equal(kinetics.Mixed_5c.b3b.conv3d.weight, reference.Mixed_5c.b3b.conv3d.weight)


@pytest.mark.numerics
def test_r2plus1d_18_loads_torchvision_file_and_matches_reference(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = randomise(r2plus1d_reference.r2plus1d_18(), 3)
    path = tmp_path / "r2plus1d_18-91a641e6.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model("r2plus1d_18", pretrained=path).eval()
    clip = torch.randn(2, 3, 8, 48, 40)
    with torch.no_grad():
        expected = reference(clip)
        logits = ours(clip)
    assert logits.shape == (2, 400)
    assert_close(logits, expected, FP32, "logits")


@pytest.mark.numerics
def test_r2plus1d_34_loads_tsp_checkpoint_and_gives_its_features(
    tsp_file: tuple[Path, nn.Module], caplog: pytest.LogCaptureFixture
) -> None:
    path, reference = tsp_file
    with caplog.at_level(logging.INFO):
        ours = create_model("r2plus1d_34", pretrained=path).eval()
    assert "dropped its heads (fc1, fc2)" in caplog.text
    # The Caffe2 layout: midplanes per conv (block 0 conv2 of layers 2-4: 288/576/1152) and BN eps 1e-3.
    widths = [ours.get_submodule(f"layer{i}.0.conv2.0.0").out_channels for i in (1, 2, 3, 4)]
    assert widths == [144, 288, 576, 1152]
    assert ours.get_submodule("layer2.0.conv1.0.0").out_channels == 230
    assert {m.eps for m in ours.modules() if isinstance(m, nn.BatchNorm3d)} == {1e-3}
    clip = torch.randn(2, 3, 8, 48, 40)
    with torch.no_grad():
        _, expected = reference(clip, return_features=True)
        features = ours.forward_head(ours.forward_features(clip), pre_logits=True)
    assert features.shape == (2, 512)
    assert_close(features, expected, FP32, "TSP features")


def test_tsp_checkpoint_does_not_fit_torchvision_midplanes(tsp_file: tuple[Path, nn.Module]) -> None:
    path, _ = tsp_file  # block 0 conv2 of layers 2-4: spatial conv, mid BN (4 tensors), temporal conv
    with pytest.raises(VisionZooError, match=r"18 wrong shape: layer2\.0\.conv2\.0\.0\.weight"):
        create_model("r2plus1d_34", pretrained=path, per_conv_midplanes=False)


@pytest.mark.parametrize(
    ("name", "source", "our_class", "their_key"),
    [
        ("r2plus1d_18", "i3d_rgb", "VideoResNet", "Conv3d_1a_7x7"),
        ("i3d_rgb", "tsp", "InceptionI3d", "unexpected: fc1.bias, fc1.weight, fc2.bias"),
        ("i3d_flow", "i3d_rgb", "InceptionI3d", "Conv3d_1a_7x7.conv3d.weight"),  # 3 input channels, not 2
    ],
)
def test_file_of_another_architecture_is_one_error_line(
    i3d_files: dict[str, tuple[Path, nn.Module]],
    tsp_file: tuple[Path, nn.Module],
    name: str,
    source: str,
    our_class: str,
    their_key: str,
) -> None:
    path = tsp_file[0] if source == "tsp" else i3d_files["rgb"][0]
    with pytest.raises(VisionZooError) as error:
        create_model(name, pretrained=path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: weights do not fit {our_class} (")
    assert their_key in message


def test_parameter_counts() -> None:
    """docs/models.md; r2plus1d_18's is torchvision's documented count."""
    counts = {"i3d_rgb": 12_697_264, "i3d_flow": 12_675_312, "r2plus1d_18": 31_505_325, "r2plus1d_34": 63_697_175}
    assert {name: sum(p.numel() for p in create_model(name).parameters()) for name in counts} == counts


def test_protocols_say_how_the_published_features_were_made() -> None:
    i3d, tsp = model_cfg("i3d_rgb").protocol, model_cfg("r2plus1d_34").protocol
    assert (i3d.num_frames, i3d.stride, i3d.fps, i3d.crop) == (16, 4, None, 224)
    assert [(0 - m) / s for m, s in zip(i3d.mean, i3d.std, strict=True)] == [-1.0] * 3  # [0, 1] -> [-1, 1]
    assert [(1 - m) / s for m, s in zip(i3d.mean, i3d.std, strict=True)] == [1.0] * 3
    assert model_cfg("i3d_flow").protocol.modality == "flow" and model_cfg("i3d_flow").input_size[0] == 2
    assert (tsp.num_frames, tsp.stride, tsp.fps, tsp.resize, tsp.crop) == (16, 16, 15.0, (128, 171), 112)


# VideoMAE: a tiny random model saved by transformers itself, then the wrapper against transformers' outputs.
TINY = {
    "image_size": 32,
    "patch_size": 16,
    "num_frames": 4,
    "tubelet_size": 2,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@pytest.mark.numerics
def test_videomae_classifier_folder_matches_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(4)
    reference = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(**TINY, num_labels=5))
    with torch.no_grad():  # a fresh LayerNorm is the identity: make fc_norm's terms count
        reference.fc_norm.weight.uniform_(0.5, 1.5)
        reference.fc_norm.bias.uniform_(-0.2, 0.2)
    reference.eval().save_pretrained(tmp_path)
    ours = create_model("videomae", model_dir=tmp_path).eval()
    clip = torch.randn(2, 3, 4, 32, 32)  # ours: [B, C, T, H, W]
    with torch.no_grad():
        tokens = reference.videomae(pixel_values=clip.transpose(1, 2)).last_hidden_state
        expected_logits = reference(pixel_values=clip.transpose(1, 2)).logits
        features = ours.forward_features(clip)
        pooled, logits = ours.forward_head(features, pre_logits=True), ours.forward_head(features)
        expected_pooled = reference.fc_norm(tokens.mean(1))
    assert features.shape == (2, 2 * 2 * 2, 32) and ours.num_features == 32 and ours.num_classes == 5
    assert_close(features, tokens, FP32, "tokens")
    assert_close(pooled, expected_pooled, FP32, "fc_norm(mean)")
    assert_close(logits, expected_logits, FP32, "logits")


@pytest.mark.numerics
def test_videomae_encoder_folder_gives_token_mean(tmp_path: Path) -> None:
    """A pre-training encoder (use_mean_pooling False) ends with its own LayerNorm and has no fc_norm."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(5)
    reference = transformers.VideoMAEModel(transformers.VideoMAEConfig(**TINY, use_mean_pooling=False)).eval()
    reference.save_pretrained(tmp_path)
    ours = create_model("videomae", model_dir=tmp_path).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values=clip.transpose(1, 2)).last_hidden_state.mean(1)
        pooled = ours(clip)  # no classifier: the features
    assert ours.fc_norm is None
    assert_close(pooled, expected, FP32, "token mean")


def test_videomae_without_transformers_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    with pytest.raises(VisionZooError, match=r"^VideoMAE needs Hugging Face transformers.*visionzoo\[videomae\]"):
        create_model("videomae", model_dir=tmp_path)


def test_videomae_folder_errors(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(VisionZooError, match="not a VideoMAE model folder"):
        create_model("videomae", model_dir=tmp_path)
    with pytest.raises(VisionZooError, match="model_dir"):
        create_model("videomae")
