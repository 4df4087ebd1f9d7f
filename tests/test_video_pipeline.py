"""BMN on your own videos, end to end through the CLI: features -> data anet-annotations -> train -> predict."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import error_line

from visionzoo.cli import main
from visionzoo.data.own_annotations import ground_truth_segments
from visionzoo.tasks import anet_metrics, postprocess

pytest.importorskip("av")
# Every test uses the trained module fixture (generate, extract, train: about 25 s on two shared cores).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

from visionzoo.data.builtin.video_demo import make_video_demo  # noqa: E402

T = 16
EXTRACT = ["--backbone", "tiny_test_net", "--img-size", "32", "--snippet-frames", "4", "--amp", "off"]


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four commands of the README's "BMN on your own videos", on 32 generated videos (8 held out)."""
    root = tmp_path_factory.mktemp("own")
    demo = make_video_demo(root / "demo", videos=32, seconds=(4.0, 12.0), size=(64, 48))
    features, run = root / "features", root / "run"
    assert cli("features", demo / "videos", *EXTRACT, "--temporal-scale", T, "--output", features) == 0
    assert cli("data", "anet-annotations", demo / "annotations.csv", "--features", features) == 0
    assert cli("train", "bmn_anet", "--data", features, "--feat-dim", 16, "--temporal-scale", T, "--feature-dir",
               f"csv_mean_{T}", "--epochs", 20, "--decay-milestones", 18, "-b", 4, "--amp", "off", "--workers", 0,
               "--output", run) == 0  # fmt: skip
    with open(features / "video_info_new.csv", newline="") as handle:
        held_out = [row["video"] for row in csv.DictReader(handle) if row["subset"] == "validation"]
    return {"root": root, "demo": demo, "features": features, "run": run, "held_out": held_out}


def as_arrays(results: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    return {video: np.array([[*p["segment"], p["score"]] for p in found]) for video, found in results.items()}


def test_own_videos_end_to_end_beat_sliding_windows(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    held_out, out = trained["held_out"], trained["root"] / "predicted"
    assert len(held_out) == 8
    config = yaml.safe_load((trained["run"] / "config.yaml").read_text())
    assert config["features"]["backbone"] == "tiny_test_net" and config["features"]["snippet_frames"] == 4

    videos = [trained["demo"] / "videos" / f"{name}.mp4" for name in held_out]
    gt = trained["demo"] / "annotations.csv"
    assert cli("predict", "bmn_anet", "--checkpoint", trained["run"] / "best.safetensors", *videos,
               "--output", out, "--ground-truth", gt) == 0  # fmt: skip
    results = json.loads((out / "proposals.json").read_text())["results"]
    assert sorted(results) == sorted(held_out)

    with open(trained["features"] / "video_info_new.csv", newline="") as handle:
        seconds = {row["video"]: float(row["seconds"]) for row in csv.DictReader(handle)}
    truth = {name: segments for name, segments in ground_truth_segments(gt).items() if name in held_out}
    for name, found in results.items():  # seconds of the real video
        assert len(found) == 100 and all(0 <= p["segment"][0] < p["segment"][1] <= seconds[name] for p in found)
    windows = {name: postprocess.sliding_window_proposals(seconds[name]) for name in held_out}
    bmn = anet_metrics.evaluate_proposals(truth, as_arrays(results), 100)
    baseline = anet_metrics.evaluate_proposals(truth, as_arrays(windows), 100)
    assert bmn["AR@100"] > baseline["AR@100"] and bmn["AUC"] > baseline["AUC"], (bmn, baseline)

    for name in held_out:  # one subtitle file and one timeline per video
        cues = (out / f"{name}.srt").read_text().strip().split("\n\n")
        spans = []
        for number, cue in enumerate(cues, start=1):
            index, times, text = cue.splitlines()
            found = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", times)
            assert int(index) == number and found
            h0, m0, s0, ms0, h1, m1, s1, ms1 = (int(v) for v in found.groups())
            spans.append((h0 * 3600 + m0 * 60 + s0 + ms0 / 1000, h1 * 3600 + m1 * 60 + s1 + ms1 / 1000))
            assert re.fullmatch(r"proposal #([1-9]|10) \(score \d\.\d{3}\)", text)  # one of the top 10
        assert spans and all(start < end for start, end in spans)
        assert all(end <= after for (_, end), (after, _) in zip(spans, spans[1:], strict=False))  # never stacked
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_reuses_cached_features_and_onnx_agrees(trained: dict, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:  # fmt: skip
    pytest.importorskip("onnxruntime")
    from visionzoo.data import video_snippets

    checkpoint, onnx_file = trained["run"] / "best.safetensors", tmp_path / "bmn.onnx"
    videos = [trained["demo"] / "videos" / f"{name}.mp4" for name in trained["held_out"][:3]]
    # fp32 like the ONNX file (the backbone keeps the precision of the cached training features)
    assert (
        cli("predict", "bmn_anet", "--checkpoint", checkpoint, *videos, "--amp", "off", "--output", tmp_path / "torch")
        == 0
    )

    class Refused:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a video was decoded again although its features are cached")

    monkeypatch.setattr(video_snippets, "SnippetDecoder", Refused)
    assert cli("export", "bmn_anet", "--checkpoint", checkpoint, "--dynamic-batch", "--output", onnx_file) == 0
    assert cli("predict", "bmn_anet", "--onnx", onnx_file, *videos, "--output", tmp_path / "onnx") == 0
    from_torch = as_arrays(json.loads((tmp_path / "torch" / "proposals.json").read_text())["results"])
    from_onnx = as_arrays(json.loads((tmp_path / "onnx" / "proposals.json").read_text())["results"])
    assert sorted(from_torch) == sorted(from_onnx) == sorted(trained["held_out"][:3])
    for name, found in from_torch.items():
        np.testing.assert_allclose(from_onnx[name][:10], found[:10], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--img-size", "48"], "img_size 32 vs 48"),
        (["--backbone", "ghostnet_050"], "backbone tiny_test_net vs ghostnet_050"),
        (["--snippet-frames", "8"], "snippet_frames 4 vs 8"),
        (["--layer", "logits"], "layer pre_logits vs logits"),
        (["--temporal-scale", "32"], f"--temporal-scale 32: this bmn takes T={T}"),
        (["--init-seed", "1"], "weights random weights (seed 0) vs random weights (seed 1)"),
    ],
)
def test_features_of_another_kind_are_refused(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str], expected: str) -> None:  # fmt: skip
    video = trained["demo"] / "videos" / f"{trained['held_out'][0]}.mp4"
    line = error_line(capsys, "predict", "bmn_anet", "--checkpoint", trained["run"] / "best.safetensors", video,
                      *argv, "--output", tmp_path / "out")  # fmt: skip
    assert expected in line, line
    assert not (tmp_path / "out").exists()


def test_training_refuses_features_of_another_shape(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, "train", "bmn_anet", "--data", trained["features"], "--feat-dim", 400,
                      "--temporal-scale", T, "--feature-dir", f"csv_mean_{T}", "--epochs", 1)  # fmt: skip
    assert "--feat-dim 400: the features in" in line and "have feat_dim 16" in line and "--feat-dim 16" in line


def test_predict_names_unreadable_videos_and_goes_on(trained: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video\n")
    video = trained["demo"] / "videos" / f"{trained['held_out'][0]}.mp4"
    capsys.readouterr()
    checkpoint = trained["run"] / "best.safetensors"
    assert cli("predict", "bmn_anet", "--checkpoint", checkpoint, video, broken, "--output", tmp_path / "out") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "broken.mp4" in line]
    assert len(warnings) == 1 and "not a video FFmpeg can read" in warnings[0]
    assert list(json.loads((tmp_path / "out" / "proposals.json").read_text())["results"]) == [trained["held_out"][0]]
    assert "none of the videos could be read" in error_line(
        capsys, "predict", "bmn_anet", "--checkpoint", checkpoint, broken, "--output", tmp_path / "none"
    )
