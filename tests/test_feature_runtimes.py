"""`visionzoo features --runtime R`: every runtime gives PyTorch fp32's features within its dtype's tolerance, for an
image backbone, a clip backbone and two-stream I3D (its two streams converted as one graph), and features.json says
what ran the backbone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import BF16, FP32, assert_close
from video_files import indexed_video

from visionzoo.cli import main
from visionzoo.engine.precision import resolve_amp

pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE = ["--backbone", "tiny_test_net", "--img-size", "32", "--snippet-frames", "8", "--temporal-scale", "8"]
CLIPS = ["--backbone", "r2plus1d_18", "--img-size", "32", "--temporal-scale", "4"]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runtime_videos")
    indexed_video(folder / "alpha.mp4", 70, fps=25.0)
    indexed_video(folder / "bravo.webm", 45, fps=15.0)
    return folder


def _features(
    videos: Path, out: Path, options: list[str], runtime: str, amp: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """features.json and each video's snippet features of one `visionzoo features` run."""
    argv = ["features", str(videos), "--output", str(out), "--keep-snippets", *options]
    assert main([*argv, "--runtime", runtime, "--amp", amp]) == 0
    snippets = {path.stem: np.load(path) for path in sorted((out / "snippets").glob("*.npy"))}
    return json.loads((out / "features.json").read_text()), snippets


def _agree(videos: Path, tmp_path: Path, options: list[str], runtime: str, amp: str, tolerance: float) -> dict:
    _, expected = _features(videos, tmp_path / "torch", options, "torch", "off")
    spec, got = _features(videos, tmp_path / f"{runtime}-{amp}", options, runtime, amp)
    assert got.keys() == expected.keys() == {"alpha", "bravo"}
    for name in expected:
        assert_close(got[name], expected[name], tolerance, f"{runtime} {amp} {name}")
    return spec


@pytest.mark.parametrize(
    ("runtime", "amp", "tolerance"),
    [("onnxruntime", "off", FP32), ("openvino", "off", FP32), ("openvino", "bf16", BF16), ("compiled", "off", FP32),
     ("torch", "bf16", BF16)],
)  # fmt: skip
def test_image_backbone_in_every_runtime(videos: Path, tmp_path: Path, runtime: str, amp: str, tolerance: float):
    if runtime == "openvino" and not HAS_OPENVINO:
        pytest.skip("openvino is not installed")
    spec = _agree(videos, tmp_path, IMAGE, runtime, amp, tolerance)
    ran_bf16 = amp == "bf16" and runtime in ("torch", "openvino")
    assert (spec["runtime"], spec["amp"]) == (runtime, "bf16" if ran_bf16 else "off")


@pytest.mark.parametrize(("runtime", "amp", "tolerance"), [("onnxruntime", "off", FP32), ("openvino", "bf16", BF16)])
def test_clip_backbone_in_a_converted_runtime(videos: Path, tmp_path: Path, runtime: str, amp: str, tolerance: float):
    if runtime == "openvino" and not HAS_OPENVINO:
        pytest.skip("openvino is not installed")
    assert _agree(videos, tmp_path, CLIPS, runtime, amp, tolerance)["runtime"] == runtime


def test_two_stream_i3d_converts_both_streams_as_one_graph(videos: Path, tmp_path: Path) -> None:
    from visionzoo.data.optical_flow import require_optflow
    from visionzoo.errors import VisionZooError

    try:
        require_optflow()
    except VisionZooError as err:
        pytest.skip(str(err))
    options = ["--backbone", "i3d", "--img-size", "32", "--temporal-scale", "4"]
    spec = _agree(videos, tmp_path, options, "onnxruntime", "off", FP32)
    assert spec["feat_dim"] == 2048 and spec["runtime"] == "onnxruntime"


def test_auto_says_what_runs_the_backbone(videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The default: OpenVINO where installed (at the precision --amp auto resolves to), said in one line."""
    with caplog.at_level("INFO", logger="visionzoo"):
        spec, _ = _features(videos, tmp_path / "auto", IMAGE, "auto", "auto")
    bf16 = resolve_amp("auto", torch.device("cpu")).resolved == "bf16"
    expected = "openvino" if HAS_OPENVINO else ("torch" if bf16 else "onnxruntime")
    assert spec["runtime"] == expected
    line = next(message for message in caplog.messages if message.startswith("backbone tiny_test_net: "))
    assert line.startswith(f"backbone tiny_test_net: {expected} ") and "(auto: " in line
