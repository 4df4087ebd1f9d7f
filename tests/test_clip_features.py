"""`visionzoo features` with clip backbones (I3D, two-stream I3D, R(2+1)D, VideoMAE), through the CLI.

Random backbones are saved in their published layouts (piergiaj's bare state dict, torchvision's, a transformers
folder); the command's features must equal the backbone applied by hand to the clips its protocol describes,
decoded here with PyAV directly: frames on the protocol's time grid, resized, centre cropped, normalised, clips of
`num_frames` centred on each snippet of `stride` frames (edges repeated), TV-L1 flow between grid frames.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line
from numerics import FP32, assert_close

from visionzoo.cli import main
from visionzoo.data.thumos14 import snippet_frames_of
from visionzoo.files import file_sha256
from visionzoo.models import create_model, model_cfg
from visionzoo.models.registry import ClipProtocol, weights_layout

av = pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_thread")

from visionzoo.data.builtin.video_demo import make_video_demo  # noqa: E402
from visionzoo.data.optical_flow import tvl1_flow  # noqa: E402
from visionzoo.data.video_clips import scaled_protocol  # noqa: E402

CROP = 32  # --img-size: the protocols' crops scaled down, so that the full-size networks run fast
TINY_VIDEOMAE = {"image_size": 32, "patch_size": 16, "num_frames": 4, "tubelet_size": 2, "hidden_size": 32,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}  # fmt: skip


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    make_video_demo(root / "demo", videos=3, seconds=(2.0, 3.0), size=(64, 48))
    return root / "demo" / "videos"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random weights in the published files' layouts: piergiaj's rgb/flow_imagenet.pt (the RGB one saved before
    PyTorch 0.4.1, without BN counters), torchvision's r2plus1d_18 file."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for seed, name in enumerate(("i3d_rgb", "i3d_flow", "r2plus1d_18")):
        torch.manual_seed(seed)
        state = create_model(name).state_dict()
        if name == "i3d_rgb":
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        files[name] = folder / f"{name}.pt"
        torch.save(state, files[name])
    return files


def _extract(capsys: pytest.CaptureFixture[str], videos: Path | list[Path], out: Path, *options: str) -> str:
    """Run `visionzoo features`; its stderr (the log lines)."""
    inputs = [str(v) for v in videos] if isinstance(videos, list) else [str(videos)]
    capsys.readouterr()
    assert main(["features", *inputs, "--output", str(out), "--amp", "off", *options]) == 0
    return capsys.readouterr().err


def _grid_frames(path: Path, protocol: ClipProtocol) -> np.ndarray:
    """uint8 [N, H, W, 3]: the frame on screen at (g + 0.5) / rate for every grid frame g, resized."""
    (h, w), container = protocol.resize, av.open(str(path))
    stream = container.streams.video[0]
    own = float(stream.average_rate)
    decoded = [(float(f.time), f.to_ndarray(width=w, height=h, format="rgb24", interpolation="BILINEAR", threads=1))
               for f in container.decode(stream)]  # fmt: skip
    container.close()
    rate, start = protocol.fps or own, decoded[0][0]
    total = round(len(decoded) / own * rate)  # the demo videos have a constant rate
    shown = [max(i for i, (t, _) in enumerate(decoded) if t <= start + (g + 0.5) / rate) for g in range(total)]
    return np.stack([decoded[i][1] for i in shown])


def _clips_by_hand(frames: np.ndarray, protocol: ClipProtocol) -> torch.Tensor:
    """[L, C, T, S, S] clips as the protocol describes them."""
    (h, w), c, s, n = protocol.resize, protocol.crop, protocol.stride, protocol.num_frames
    top, left = int(round((h - c) / 2)), int(round((w - c) / 2))
    clips = []
    for i in range(max(1, len(frames) // s)):
        first = i * s + s // 2 - n // 2
        index = [min(max(j, 0), len(frames) - 1) for j in range(first, first + n + 1)]
        if protocol.modality == "flow":
            pairs = [tvl1_flow(frames[[a, b]])[:, 0] if a != b else np.zeros((2, h, w), np.float32)
                     for a, b in zip(index[:-1], index[1:], strict=True)]  # fmt: skip
            clip = np.stack(pairs, axis=1)
        else:
            clip = (frames[index[:-1]].astype(np.float32) / 255).transpose(3, 0, 1, 2)
        mean, std = (np.asarray(v, np.float32)[:, None, None, None] for v in (protocol.mean, protocol.std))
        clips.append((clip[:, :, top : top + c, left : left + c] - mean) / std)
    return torch.from_numpy(np.stack(clips))


def _by_hand(model: torch.nn.Module, path: Path, protocol: ClipProtocol) -> np.ndarray:
    with torch.no_grad():
        clips = _clips_by_hand(_grid_frames(path, protocol), protocol)
        return model.eval().forward_head(model.forward_features(clips), pre_logits=True).numpy()


def test_r2plus1d_features_equal_the_model_on_the_protocols_clips(
    videos: Path, weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """15 fps resampling, 16-frame clips every 16, 37 x 49 resize and 32 crop; the file's layout named."""
    log = _extract(capsys, videos, tmp_path / "f", "--backbone", "r2plus1d_18", "--pretrained",
                   str(weights["r2plus1d_18"]), "--img-size", str(CROP), "--layout", "snippets")  # fmt: skip
    assert "torchvision R(2+1)D-18 (400 classes)" in log
    protocol = scaled_protocol(model_cfg("r2plus1d_18").protocol, CROP)
    model = create_model("r2plus1d_18", pretrained=weights["r2plus1d_18"])
    for path in sorted(videos.glob("*.mp4")):
        ours = np.load(tmp_path / "f" / "snippets" / f"{path.stem}.npy")
        assert_close(torch.from_numpy(ours), torch.from_numpy(_by_hand(model, path, protocol)), FP32, path.stem)


def test_two_stream_i3d_is_rgb_then_tvl1_flow(
    videos: Path, weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cv2.optflow")
    video = sorted(videos.glob("*.mp4"))[0]
    two_stream = ["--pretrained", str(weights["i3d_rgb"]), "--pretrained-flow", str(weights["i3d_flow"])]
    _extract(capsys, [video], tmp_path / "f", "--backbone", "i3d", *two_stream, "--img-size", str(CROP),
             "--layout", "snippets")  # fmt: skip
    ours = np.load(tmp_path / "f" / "snippets" / f"{video.stem}.npy")
    expected = [
        _by_hand(create_model(name, pretrained=weights[name]), video, scaled_protocol(model_cfg(name).protocol, CROP))
        for name in ("i3d_rgb", "i3d_flow")
    ]
    assert ours.shape[1] == 2048 and np.abs(expected[1]).sum() > 0
    assert_close(torch.from_numpy(ours), torch.from_numpy(np.concatenate(expected, axis=1)), FP32, "rgb | flow")
    spec = json.loads((tmp_path / "f" / "features.json").read_text())
    assert spec["weights_sha256"] == file_sha256(weights["i3d_rgb"])
    assert spec["weights_flow_sha256"] == file_sha256(weights["i3d_flow"])
    assert [spec["protocol"][m]["modality"] for m in ("rgb", "flow")] == ["rgb", "flow"]
    assert spec["snippet_frames"] == 4 and spec["protocol"]["rgb"]["fps"] is None


def test_videomae_folder_features_equal_transformers_on_the_protocols_clips(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clip follows the folder's config (4 frames of 32 x 32 here); the folder's files are hashed."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(4)
    transformers.VideoMAEModel(transformers.VideoMAEConfig(**TINY_VIDEOMAE)).eval().save_pretrained(tmp_path / "vm")
    video = sorted(videos.glob("*.mp4"))[1]
    _extract(capsys, [video], tmp_path / "f", "--backbone", f"videomae:{tmp_path / 'vm'}", "--layout", "snippets")
    ours = np.load(tmp_path / "f" / "snippets" / f"{video.stem}.npy")
    model = create_model("videomae", model_dir=tmp_path / "vm")
    protocol = model_cfg("videomae").protocol
    protocol = ClipProtocol(4, 4, None, (32, 32), 32, protocol.mean, protocol.std)
    assert_close(torch.from_numpy(ours), torch.from_numpy(_by_hand(model, video, protocol)), FP32, "videomae")
    spec = json.loads((tmp_path / "f" / "features.json").read_text())
    assert spec["protocol"]["rgb"]["num_frames"] == 4 and len(spec["weights_sha256"]) == 64


def test_bsn_and_snippets_layouts(
    videos: Path, weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BSN: csv_mean_<T>/ with T rows (snippets kept too: the same vectors); snippets: [L, D] at the stride,
    with the features.json bmn_thumos14 reads; both record backbone, weights hash and protocol."""
    common = ["--backbone", "r2plus1d_18", "--pretrained", str(weights["r2plus1d_18"]), "--img-size", str(CROP)]
    _extract(capsys, videos, tmp_path / "bsn", *common, "--temporal-scale", "8", "--keep-snippets")
    _extract(capsys, videos, tmp_path / "snip", *common, "--layout", "snippets")
    with open(tmp_path / "snip" / "video_info_new.csv", newline="") as handle:
        info = {row["video"]: row for row in csv.DictReader(handle)}
    assert sorted(info) == ["demo_000", "demo_001", "demo_002"]
    for name, row in info.items():
        snippets = np.load(tmp_path / "snip" / "snippets" / f"{name}.npy")
        assert snippets.shape == (int(row["numFrame"]) // 16, 512) and float(row["fps"]) == 15.0
        np.testing.assert_array_equal(snippets, np.load(tmp_path / "bsn" / "snippets" / f"{name}.npy"))
        rows = (tmp_path / "bsn" / "csv_mean_8" / f"{name}.csv").read_text().splitlines()
        assert len(rows) == 9 and len(rows[0].split(",")) == 512
    assert not (tmp_path / "snip" / "csv_mean_100").exists()
    assert snippet_frames_of(tmp_path / "snip", 0, 512) == 16
    for folder, feature_dir in (("bsn", "csv_mean_8"), ("snip", "snippets")):
        spec = json.loads((tmp_path / folder / "features.json").read_text())
        assert spec["feature_dir"] == feature_dir and spec["backbone"] == "r2plus1d_18"
        assert spec["weights_sha256"] == file_sha256(weights["r2plus1d_18"]) and spec["init_seed"] is None
        assert spec["protocol"]["rgb"] | {"source": ""} == {"num_frames": 16, "stride": 16, "fps": 15.0,
            "resize": [37, 49], "crop": 32, "mean": [0.43216, 0.394666, 0.37645],
            "std": [0.22803, 0.22145, 0.216989], "modality": "rgb", "source": ""}  # fmt: skip
    # train refuses them: 512-d vs the recipe's 400, and per-snippet files are not BSN's rescaled ones
    line = error_line(capsys, "train", "bmn_own", "--data", str(tmp_path / "bsn"), "--temporal-scale", "8")
    assert "feat_dim 512" in line and "--feat-dim 512" in line
    line = error_line(capsys, "train", "bmn_own", "--data", str(tmp_path / "snip"), "--feat-dim", "512")
    assert "feature_dir snippets" in line
    # another protocol into the same folder is another kind of features
    line = error_line(capsys, "features", str(videos), "--output", str(tmp_path / "snip"), *common[:-1], "48",
                      "--layout", "snippets", "--amp", "off")  # fmt: skip
    assert "holds features of another kind" in line and "protocol" in line


def test_file_of_another_architecture_is_one_line_naming_both(
    videos: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = error_line(capsys, "features", str(videos), "--output", str(tmp_path / "f"), "--backbone",
                      "r2plus1d_18", "--pretrained", str(weights["i3d_rgb"]))  # fmt: skip
    assert "weights do not fit VideoResNet" in line
    assert "holds piergiaj I3D RGB (400 classes) weights, not r2plus1d_18's" in line
    line = error_line(capsys, "features", str(videos), "--output", str(tmp_path / "f"), "--backbone", "i3d",
                      "--pretrained", str(weights["i3d_rgb"]))  # fmt: skip
    assert "give both --pretrained RGB and --pretrained-flow FLOW" in line


def test_layouts_are_named_from_their_keys() -> None:
    """TSP's training checkpoint, IG65M's Caffe2 R(2+1)D-34 and torchvision's ResNet-50, from their keys."""
    r34 = create_model("r2plus1d_34").state_dict()
    assert weights_layout({f"features.{k}": v for k, v in r34.items()}) == "TSP R(2+1)D-34"
    assert weights_layout(r34) == "Caffe2 (IG65M) R(2+1)D-34 (400 classes)"
    assert weights_layout(create_model("resnet50").state_dict()) == "torchvision ResNet-50 (1000 classes)"
    assert weights_layout(create_model("i3d_flow", num_classes=157).state_dict()) == "piergiaj I3D flow (157 classes)"
    assert weights_layout({"encoder.weight": torch.zeros(1)}) is None


def test_two_stream_without_opencv_contrib_is_one_line(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` raises ImportError
    line = error_line(capsys, "features", str(videos), "--output", str(tmp_path / "f"), "--backbone", "i3d",
                      "--img-size", str(CROP))  # fmt: skip
    assert "pip install 'visionzoo[flow]'" in line and "--backbone i3d_rgb" in line
    assert not (tmp_path / "f").exists()


def test_models_listing_marks_feature_backbones(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "centre frame" in lines["resnet50"]
    assert "rgb clips of 16 frames every 16, 15 fps, 112 px" in lines["r2plus1d_34"]
    assert "flow clips of 16 frames every 4, the video's fps, 224 px" in lines["i3d_flow"]
    assert "feature backbone" not in lines["bmn"] and "temporal action localizer" in lines["bmn"]
    assert lines["resnet50"].split()[1:3] == ["image", "classifier"] and "video classifier" in lines["video_mlp"]
