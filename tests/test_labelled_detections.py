"""From your own videos to labelled detections, through the CLI: features -> data anet-annotations -> train bmn_own
and anet_video_classifier -> predict --classes on held-out videos -> eval-detection; and what predict keeps."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import error_line

from visionzoo.cli import main
from visionzoo.tasks.detection import baseline_detections, load_classes
from visionzoo.tasks.postprocess import write_results

pytest.importorskip("av")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

from visionzoo.data.builtin.video_demo import CLASSES, make_video_demo  # noqa: E402

T = 16
# One backbone of each family, random weights at small sizes: an image classifier on the snippets' centre frames,
# and a clip network on 16-frame clips at its published protocol (15 fps, stride 16), 32 px crops.
BACKBONES = {
    "image": (["--backbone", "tiny_test_net", "--img-size", "32", "--snippet-frames", "4"], 16),
    "clips": (["--backbone", "r2plus1d_18", "--img-size", "32"], 512),
}
SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d{3})"


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module", params=["image"])
def trained(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict:
    """32 generated videos (8 held out), their features, a BMN and a video classifier trained on them with the
    defaults but the sizes (the classifier reads its input size from features.json: no --feat-dim)."""
    extract, feat_dim = BACKBONES[request.param]
    root = tmp_path_factory.mktemp(f"labels-{request.param}")
    demo = make_video_demo(root / "demo", videos=32, seconds=(4.0, 12.0), size=(64, 48))
    features, bmn, classifier = root / "features", root / "bmn", root / "classifier"
    # PyTorch for the backbone here and in predict below: 20 epochs on 24 videos amplify the last-bit differences
    # between runtimes (tests/test_feature_runtimes.py checks those), and the margin over sliding windows is small
    assert cli("features", demo / "videos", *extract, "--amp", "off", "--temporal-scale", T, "--output", features,
               "--runtime", "torch") == 0  # fmt: skip
    assert cli("data", "anet-annotations", demo / "annotations.csv", "--features", features) == 0
    assert cli("train", "bmn_own", "--data", features, "--feat-dim", feat_dim, "--temporal-scale", T, "--feature-dir",
               f"csv_mean_{T}", "--epochs", 20, "--decay-milestones", 18, "-b", 4, "--workers", 0,
               "--output", bmn) == 0  # fmt: skip
    assert cli("train", "anet_video_classifier", "--data", features, "--workers", 0, "--output", classifier) == 0
    with open(features / "video_info_new.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    held_out = [row["video"] for row in rows if row["subset"] == "validation"]
    seconds = {row["video"]: float(row["seconds"]) for row in rows}
    return {"root": root, "demo": demo, "features": features, "bmn": bmn / "best.safetensors", "feat_dim": feat_dim,
            "backbone": extract[1],
            "classifier": classifier / "best.safetensors", "held_out": held_out, "seconds": seconds}  # fmt: skip


def videos_of(trained: dict, names: list[str]) -> list[Path]:
    return [trained["demo"] / "videos" / f"{name}.mp4" for name in names]


def average_map(capsys: pytest.CaptureFixture[str], truth: Path, detections: Path) -> float:
    capsys.readouterr()
    assert cli("eval-detection", "--ground-truth", truth, "--detections", detections, "--json") == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["average_mAP"]


def srt_cues(path: Path) -> list[tuple[float, float, str]]:
    cues = []
    for block in path.read_text().strip().split("\n\n"):
        _, times, text = block.splitlines()
        start, end = (re.fullmatch(SRT_TIME, t.strip()).groups() for t in times.split("-->"))
        to_seconds = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for h, m, s, ms in (start, end)]
        cues.append((*to_seconds, text))
    return cues


@pytest.mark.parametrize("trained", ["image", "clips"], indirect=True)
def test_labelled_detections_beat_sliding_windows_and_the_folder_keeps_earlier_videos(
    trained: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    held_out, out, gt = trained["held_out"], trained["root"] / "predicted", trained["demo"] / "annotations.csv"
    assert len(held_out) == 8
    config = yaml.safe_load((trained["classifier"].parent / "config.yaml").read_text())
    assert (config["feat_dim"], config["temporal_scale"]) == (trained["feat_dim"], T)  # from features.json
    assert config["class_names"] == sorted(CLASSES) and config["features"]["backbone"] == trained["backbone"]
    first, second = held_out[:5], held_out[3:]
    base = ["predict", "bmn_own", "--checkpoint", trained["bmn"], "--classes", trained["classifier"], "--output", out,
            "--ground-truth", gt, "--runtime", "torch"]  # fmt: skip
    assert cli(*base, *videos_of(trained, first)) == 0
    earlier_png = (out / f"{held_out[0]}.png").read_bytes()
    capsys.readouterr()
    assert cli(*base, *videos_of(trained, second)) == 0  # two videos again, three new ones
    said = [line for line in capsys.readouterr().out.splitlines() if "earlier videos" in line]
    assert said == [f"{out}: kept 3 earlier videos' results; 2 predicted again and replaced "
                    f"({held_out[3]}, {held_out[4]})"]  # fmt: skip
    assert (out / f"{held_out[0]}.png").read_bytes() == earlier_png

    proposals = json.loads((out / "proposals.json").read_text())["results"]
    detections = json.loads((out / "detections.json").read_text())["results"]
    assert sorted(proposals) == sorted(detections) == sorted(held_out)
    for name, found in detections.items():  # labels of the data, seconds of the real video, in milliseconds
        assert found and all(d["label"] in CLASSES for d in found)
        assert all(0 <= d["segment"][0] < d["segment"][1] <= trained["seconds"][name] for d in found)
        assert all(round(t, 3) == t for d in found for t in d["segment"])
        assert [d["score"] for d in found] == sorted((d["score"] for d in found), reverse=True)
    page = (out / "index.html").read_text()
    assert all(f'id="section-{i}"' in page for i in range(8)) and 'id="section-8"' not in page
    assert page.count('class="seg') >= 8 and 'data-label="' in page

    for name in held_out:  # subtitles one at a time, labelled; a timeline per video
        cues = srt_cues(out / f"{name}.srt")
        assert cues and all(start < end for start, end, _ in cues)
        assert all(end <= next_start for (_, end, _), (next_start, _, _) in zip(cues, cues[1:], strict=False))
        assert all(re.fullmatch(rf"({'|'.join(CLASSES)}) \(score \d\.\d{{3}}\)", text) for *_, text in cues)
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same classes over sliding windows: what knowing only the duration buys
    feature_files = [trained["features"] / f"csv_mean_{T}" / f"{name}.csv" for name in held_out]
    classes_file = trained["root"] / "classes.json"
    assert cli("predict", "anet_video_classifier", "--checkpoint", trained["classifier"], *feature_files,
               "--output", classes_file, "--runtime", "torch") == 0  # fmt: skip
    classes = load_classes(classes_file)
    assert sorted(classes) == sorted(held_out)
    windows = trained["root"] / "windows.json"
    write_results(windows, baseline_detections({n: trained["seconds"][n] for n in held_out}, classes))
    bmn = average_map(capsys, trained["features"], out / "detections.json")
    baseline = average_map(capsys, trained["features"], windows)
    assert bmn > baseline, (bmn, baseline)


def test_video_classifier_predicts_on_videos_as_on_their_features(trained: dict, tmp_path: Path) -> None:
    names = trained["held_out"][:2]
    assert cli("predict", "anet_video_classifier", "--checkpoint", trained["classifier"], *videos_of(trained, names),
               "--output", tmp_path / "videos") == 0  # fmt: skip
    feature_files = [trained["features"] / f"csv_mean_{T}" / f"{name}.csv" for name in names]
    assert cli("predict", "anet_video_classifier", "--checkpoint", trained["classifier"], *feature_files,
               "--output", tmp_path / "features.json") == 0  # fmt: skip
    from_videos = load_classes(tmp_path / "videos" / "classification.json")
    from_features = load_classes(tmp_path / "features.json")
    assert sorted(from_videos) == sorted(names)
    for name in names:
        assert [label for label, _ in from_videos[name]] == [label for label, _ in from_features[name]]


def test_classes_of_another_kind_are_refused(trained: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    video = videos_of(trained, trained["held_out"][:1])
    line = error_line(capsys, "predict", "bmn_own", "--checkpoint", trained["bmn"], *video, "--classes",
                      trained["bmn"], "--output", tmp_path / "out")  # fmt: skip
    assert "a proposals checkpoint (bmn), not a video classifier" in line, line
    assert not (tmp_path / "out").exists()


def test_a_batch_larger_than_the_training_set_is_clamped(trained: dict, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    with caplog.at_level("INFO"):
        assert cli("train", "anet_video_classifier", "--data", trained["features"], "-b", 100, "--epochs", 1,
                   "--workers", 0, "--output", tmp_path / "run") == 0  # fmt: skip
    assert "-b/--batch-size 100: the training set has 24 samples; training at batch 24" in caplog.text
