"""`visionzoo predict`: evaluation's preprocessing, and the same answers from a checkpoint and its ONNX export."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from numerics import assert_close
from PIL import Image

from visionzoo.cli import main
from visionzoo.export.model_card import card_from_recipe
from visionzoo.export.predict import load_image, read_durations
from visionzoo.models import create_model
from visionzoo.recipes.base import ClassificationRecipe

pytest.importorskip("onnxruntime")

SHARED_ACTIVITYNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "activitynet"
CLASSES = ["apple", "banana", "cherry", "damson"]


pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*argv: str) -> int:
    """The command as a user runs it."""
    return main(list(argv))


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of a command that must fail with exit status 2 (after at most the lines saying what
    precision and runtime the model runs in)."""
    capsys.readouterr()
    assert cli(*argv) == 2
    *before, line = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("visionzoo: error: ") and all(b.startswith(("amp ", "runtime: ")) for b in before), before
    return line


def write_images(folder: Path) -> list[Path]:
    """PNG and JPEG files of assorted sizes and modes (RGB, greyscale, RGBA)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode, ext) in enumerate(
        [((61, 47), "RGB", "png"), ((40, 90), "L", "jpg"), ((64, 64), "RGBA", "png")]
    ):
        pixels = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8).squeeze()
        path = folder / f"img{i}.{ext}"
        Image.fromarray(pixels, mode).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def folder_run(tmp_path: Path) -> Path:
    """A run directory of an image-folder classifier (tiny_test_net, 4 classes, 48 px, crop 0.875)."""
    data = tmp_path / "data"
    for name in CLASSES:
        (data / "train" / name).mkdir(parents=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"model": "tiny_test_net", "dataset": "imagefolder", "data": str(data), "num_classes": len(CLASSES)}
    config |= {"img_size": 48, "crop_pct": 0.875, "interpolation": "bicubic"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    model = create_model("tiny_test_net", num_classes=len(CLASSES))
    with torch.no_grad():
        model.fc.weight.mul_(20.0)  # spread the logits: top-k orders far from ties
    torch.save(model.state_dict(), run_dir / "best.pt")
    return run_dir


def test_image_preprocessing_is_the_evaluation_pipeline(tmp_path: Path) -> None:
    from visionzoo.data.imagefolder import ImageFolderDataset
    from visionzoo.tasks.classification import eval_transform

    recipe = ClassificationRecipe(model="tiny_test_net", img_size=40, crop_pct=0.8, interpolation="bicubic")
    write_images(tmp_path / "val" / "only")
    val = ImageFolderDataset(tmp_path, "val", eval_transform(recipe))
    card = card_from_recipe(recipe.replace(data_format="imagefolder"))
    for index in range(len(val)):
        image, _ = val[(index, 0)]
        assert torch.equal(load_image(val.path(index), card), image)

    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cifar.png")
    cifar = card_from_recipe(recipe.replace(data_format="cifar10", img_size=32, crop_pct=1.0))
    assert torch.equal(load_image(tmp_path / "cifar.png", cifar), torch.from_numpy(pixels).permute(2, 0, 1))
    Image.fromarray(pixels).resize((64, 40)).save(tmp_path / "wide.png")  # resized whole, not cropped
    assert load_image(tmp_path / "wide.png", cifar).shape == (3, 32, 32)


@pytest.mark.numerics
def test_classifier_predictions_agree_between_checkpoint_and_onnx(tmp_path: Path, folder_run: Path) -> None:
    images = write_images(tmp_path / "images")
    checkpoint, onnx_file = folder_run / "best.pt", tmp_path / "model.onnx"
    assert cli("export", "tiny_test_net", "--checkpoint", str(checkpoint), "--output", str(onnx_file)) == 0
    assert cli("predict", "tiny_test_net", "--checkpoint", str(checkpoint), str(tmp_path / "images"), "--amp", "off",
               "--topk", "3", "--output", str(tmp_path / "torch.json")) == 0  # fmt: skip
    assert cli("predict", "tiny_test_net", "--onnx", str(onnx_file), str(tmp_path / "images"),
               "--topk", "3", "--output", str(tmp_path / "onnx.json")) == 0  # fmt: skip
    from_torch = json.loads((tmp_path / "torch.json").read_text())
    from_onnx = json.loads((tmp_path / "onnx.json").read_text())

    assert [p["file"] for p in from_torch] == [str(p) for p in images]
    for a, b in zip(from_torch, from_onnx, strict=True):
        assert [e["name"] for e in a["topk"]] == [e["name"] for e in b["topk"]]
        assert set(a["topk"][0]) == {"index", "name", "probability"} and a["topk"][0]["name"] in CLASSES
        assert_close([e["probability"] for e in b["topk"]], [e["probability"] for e in a["topk"]])

    # The checkpoint's answer, computed by hand from the evaluation transform and the task's normalisation.
    model = create_model("tiny_test_net", num_classes=len(CLASSES), pretrained=str(checkpoint)).eval()
    card = card_from_recipe(ClassificationRecipe(data_format="imagefolder", img_size=48, interpolation="bicubic"))
    mean, std = torch.tensor(card.preprocessing["mean"]) * 255, torch.tensor(card.preprocessing["std"]) * 255
    image = load_image(images[1], card).float()
    with torch.no_grad():
        probs = model(((image - mean[:, None, None]) / std[:, None, None])[None]).softmax(1)[0]
    assert [e["index"] for e in from_torch[1]["topk"]] == probs.topk(3).indices.tolist()
    assert from_torch[1]["topk"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-6)

    assert cli("predict", "tiny_test_net", "--onnx", str(onnx_file), str(images[0]), "--output",
               str(tmp_path / "p.csv")) == 0  # fmt: skip
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "file,rank,index,name,probability" and len(rows) == 1 + len(CLASSES)  # top-5 capped at 4


@pytest.mark.parametrize("runtime", ["auto", "compiled", "onnxruntime", "openvino"])
def test_predict_in_every_runtime_agrees_with_torch(
    tmp_path: Path, folder_run: Path, runtime: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`predict --runtime R` from a checkpoint (converted once, cached) gives the torch fp32 answer; auto says
    what it picked."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    write_images(tmp_path / "images")
    checkpoint = str(folder_run / "best.pt")
    common = ["predict", "tiny_test_net", "--checkpoint", checkpoint, str(tmp_path / "images"), "--amp", "off"]
    assert cli(*common, "--runtime", "torch", "--output", str(tmp_path / "torch.json")) == 0
    with caplog.at_level("INFO", logger="visionzoo"):
        assert cli(*common, "--runtime", runtime, "--output", str(tmp_path / "other.json")) == 0
    if runtime == "auto":  # --amp off: fp32, in OpenVINO where installed, else onnxruntime
        picked = "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"
        assert f"runtime: {picked} fp32 (auto: tiny_test_net: " in caplog.text
    from_torch = json.loads((tmp_path / "torch.json").read_text())
    from_other = json.loads((tmp_path / "other.json").read_text())
    for a, b in zip(from_torch, from_other, strict=True):
        assert [e["name"] for e in a["topk"]] == [e["name"] for e in b["topk"]]
        assert_close([e["probability"] for e in b["topk"]], [e["probability"] for e in a["topk"]])


def write_features(folder: Path, names: list[str], temporal_scale: int, feat_dim: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    header = ",".join(f"f{i}" for i in range(feat_dim))
    for name in names:
        values = rng.random((temporal_scale, feat_dim)).astype(np.float32) * 2
        np.savetxt(folder / f"{name}.csv", values, delimiter=",", header=header, comments="", fmt="%.6f")


@pytest.fixture
def bmn_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "bmn_run"
    run_dir.mkdir()
    config = {"model": "bmn", "temporal_scale": 16, "feat_dim": 32, "max_proposals": 20}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    model = create_model("bmn", temporal_scale=16, feat_dim=32)
    with torch.no_grad():  # sharper outputs, so candidate scores are far apart compared to fp32 noise
        for head in (model.x_1d_s[-2], model.x_1d_e[-2], model.x_2d_p[-2]):
            head.weight.mul_(30.0)
    torch.save(model.state_dict(), run_dir / "last.pt")
    return run_dir


def proposals_of(path: Path) -> dict[str, np.ndarray]:
    results = json.loads(path.read_text())["results"]
    return {video: np.array([[*p["segment"], p["score"]] for p in found]) for video, found in results.items()}


@pytest.mark.numerics
def test_bmn_proposals_agree_between_checkpoint_and_onnx(tmp_path: Path, bmn_run: Path) -> None:
    write_features(tmp_path / "features", ["v_video_a", "v_video_b", "v_video_c"], 16, 32)
    checkpoint, onnx_file = bmn_run / "last.pt", tmp_path / "bmn.onnx"
    assert cli("export", "bmn", "--checkpoint", str(checkpoint), "--dynamic-batch", "--output", str(onnx_file)) == 0
    common = [str(tmp_path / "features"), "--duration-second", "30", "60", "90", "--batch-size", "2"]
    torch_run = ["predict", "bmn", "--checkpoint", str(checkpoint), "--amp", "off", *common]
    assert cli(*torch_run, "--output", str(tmp_path / "t.json")) == 0
    assert cli("predict", "bmn", "--onnx", str(onnx_file), *common, "--output", str(tmp_path / "o.json")) == 0
    from_torch, from_onnx = proposals_of(tmp_path / "t.json"), proposals_of(tmp_path / "o.json")

    assert sorted(from_torch) == ["video_a", "video_b", "video_c"]  # ActivityNet ids: the v_ prefix dropped
    for video, found in from_torch.items():
        assert len(found) == 20  # max_proposals from the run's config
        np.testing.assert_array_equal(found[:, :2], from_onnx[video][:, :2])
        assert_close(from_onnx[video][:, 2], found[:, 2])
    assert from_torch["video_c"][:, :2].max() <= 90.0 and from_torch["video_c"][:, :2].max() > 45.0


def test_bmn_without_durations_reports_fractions_of_the_feature_span(tmp_path: Path, bmn_run: Path) -> None:
    write_features(tmp_path / "features", ["v_clip"], 16, 32)
    csv_file = tmp_path / "features" / "v_clip.csv"
    assert cli("predict", "bmn", "--checkpoint", str(bmn_run / "last.pt"), str(csv_file),
               "--output", str(tmp_path / "unit.json")) == 0  # fmt: skip
    info = tmp_path / "video_info.csv"
    info.write_text("video,numFrame,seconds,fps,rfps,subset,featureFrame\nv_clip,1000,40.0,25.0,25.0,validation,992\n")
    assert cli("predict", "bmn", "--checkpoint", str(bmn_run / "last.pt"), str(csv_file), "--video-info", str(info),
               "--output", str(tmp_path / "seconds.json")) == 0  # fmt: skip
    unit, seconds = proposals_of(tmp_path / "unit.json")["clip"], proposals_of(tmp_path / "seconds.json")["clip"]
    assert unit[:, :2].min() >= 0.0 and unit[:, :2].max() <= 1.0
    scale = 992 / 1000 * 40.0  # the reference's (duration_frame // 16 * 16) / duration_frame * duration_second
    np.testing.assert_allclose(seconds[:, :2], unit[:, :2] * scale, rtol=1e-12)
    np.testing.assert_array_equal(seconds[:, 2], unit[:, 2])


def test_bmn_rejects_features_of_another_shape(
    tmp_path: Path, bmn_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_features(tmp_path / "features", ["v_long"], 20, 32)
    line = cli_error(capsys, "predict", "bmn", "--checkpoint", str(bmn_run / "last.pt"), str(tmp_path / "features"))
    assert "expected temporal_scale=16" in line


@pytest.mark.skipif(not (SHARED_ACTIVITYNET / "video_info_new.csv").is_file(), reason="ActivityNet files absent")
def test_durations_from_the_real_info_csv_and_annotations_agree() -> None:
    from_csv = read_durations(SHARED_ACTIVITYNET / "video_info_new.csv")
    from_json = read_durations(SHARED_ACTIVITYNET / "anet_anno_action.json")
    assert len(from_csv) == len(from_json) > 19000
    assert all(from_csv[name] == pytest.approx(from_json[name]) for name in from_json)
    assert from_csv["v_QOlSCBRmfWY"] == pytest.approx(2064 / 2067 * 82.73)


def test_predict_onnx_without_onnxruntime_says_what_to_install(
    tmp_path: Path, folder_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_file = tmp_path / "model.onnx"
    assert cli("export", "tiny_test_net", "--checkpoint", str(folder_run / "best.pt"), "--output", str(onnx_file)) == 0
    images = write_images(tmp_path / "images")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)  # else auto runs the file in OpenVINO
    line = cli_error(capsys, "predict", "tiny_test_net", "--onnx", str(onnx_file), str(images[0]))
    assert re.search(r"onnxruntime is not installed.*pip install 'visionzoo\[onnx\]'", line)


def test_predict_names_a_missing_input(tmp_path: Path, folder_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nowhere.png")
    assert "nowhere.png: no such file or folder" in cli_error(
        capsys, "predict", "tiny_test_net", "--checkpoint", str(folder_run / "best.pt"), missing
    )
