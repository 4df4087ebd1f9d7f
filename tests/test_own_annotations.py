"""`visionzoo data anet-annotations` (your CSV or ActivityNet JSON -> the BMN files) and `data make-video-demo`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line

from visionzoo.cli import main
from visionzoo.data.activitynet import ActivityNetFeatures, format_feature_csv

T, D = 8, 4
VIDEOS = {"walk": (250, 10.0), "run": (500, 20.0), "v_jump": (125, 5.0), "idle": (100, 4.0), "swim": (300, 12.0)}


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def features(tmp_path: Path) -> Path:
    """A feature folder as `visionzoo features` leaves it (25 fps videos, 16-frame snippets, subsets 'testing')."""
    root = tmp_path / "features"
    (root / f"csv_mean_{T}").mkdir(parents=True)
    lines = ["video,numFrame,seconds,fps,rfps,subset,featureFrame"]
    rng = np.random.default_rng(0)
    for name, (frames, seconds) in VIDEOS.items():
        lines.append(f"{name},{frames},{seconds},25.0,25.0,testing,{frames // 16 * 16}")
        (root / f"csv_mean_{T}" / f"{name}.csv").write_text(format_feature_csv(rng.normal(size=(T, D))))
    (root / "video_info_new.csv").write_text("\n".join(lines) + "\n")
    return root


def subsets(root: Path) -> dict[str, str]:
    with open(root / "video_info_new.csv", newline="") as handle:
        return {row["video"]: row["subset"] for row in csv.DictReader(handle)}


def test_csv_annotations_become_the_bmn_files(
    tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_text(
        "video,start,end,label,subset\n"
        "walk.mp4,1.0,4.5,walking,\n"  # a file name: its stem is the video
        "walk,6,9.99,walking,\n"
        "run,0,20.0,running,validation\n"  # ends at the video's end
        "jump,1.5,3,jumping,training\n"  # ActivityNet's v_ prefix matched
        "swim,2,11,swimming\n"
    )
    capsys.readouterr()
    assert cli("data", "anet-annotations", str(annotations), "--features", str(features), "--val-fraction", "0.5") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{features}: 1 testing, 2 training, 2 validation",
        f"next: visionzoo train bmn_own --data {features}",
    ]
    database = json.loads((features / "anet_anno_action.json").read_text())
    assert set(database) == set(VIDEOS)
    assert database["walk"] == {
        "duration_second": 10.0,
        "duration_frame": 250,
        "feature_frame": 240,
        "annotations": [{"segment": [1.0, 4.5], "label": "walking"}, {"segment": [6.0, 9.99], "label": "walking"}],
    }
    assert database["idle"]["annotations"] == []
    found = subsets(features)
    assert (found["run"], found["v_jump"], found["idle"]) == ("validation", "training", "testing")
    assert sorted([found["walk"], found["swim"]]) == ["training", "validation"]  # the seeded split of the rest

    train = ActivityNetFeatures(features, "train", T, D, feature_dir=f"csv_mean_{T}")
    val = ActivityNetFeatures(features, "validation", T, D, feature_dir=f"csv_mean_{T}")
    assert len(train) == len(val) == 2
    walk = next(v for v in train.videos + val.videos if v.name == "walk")
    np.testing.assert_allclose(walk.segments, [[1.0, 4.5], [6.0, 9.99]])
    assert walk.feature_second == pytest.approx(240 / 250 * 10.0)


def test_split_is_seeded_and_given_subsets_are_kept(tmp_path: Path, features: Path) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_text("".join(f"{name},0.5,2,act\n" for name in VIDEOS))
    splits = []
    for seed in (0, 0, 1, 2, 3):
        assert cli("data", "anet-annotations", str(annotations), "--features", str(features), "--seed", str(seed)) == 0
        splits.append(subsets(features))
        assert sorted(splits[-1].values()).count("validation") == 1  # round(5 * 0.25)
    assert splits[0] == splits[1] and len({tuple(sorted(s.items())) for s in splits}) > 1


def test_activitynet_json_annotations(tmp_path: Path, features: Path) -> None:
    database = {
        "walk": {"subset": "training", "annotations": [{"segment": [1, 2], "label": "walking"}]},
        "jump": {"subset": "validation", "annotations": [{"segment": [0.5, 4.0], "label": "jumping"}]},
        "idle": {"subset": "testing", "annotations": []},
    }
    annotations = tmp_path / "activity_net.json"
    annotations.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    assert cli("data", "anet-annotations", str(annotations), "--features", str(features)) == 0
    found = subsets(features)
    assert (found["walk"], found["v_jump"], found["idle"], found["run"]) == (
        "training",
        "validation",
        "testing",
        "testing",
    )
    written = json.loads((features / "anet_anno_action.json").read_text())
    assert written["v_jump"]["annotations"] == [{"segment": [0.5, 4.0], "label": "jumping"}]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("walk,3,3,walking\n", "row 1: start 3 must be >= 0 and before end 3"),
        ("walk,1,10.2,walking\n", "row 1: end 10.2 s is past the video's end (10.000 s)"),
        (
            "walk,one,2,walking\n",
            "row 1: start: input should be a valid number, unable to parse string as a number, got 'one'",
        ),
        ("walk,1,2\n", "row 1: 3 fields, expected video,start,end,label[,subset]"),
        (
            "walk,1,2,walking,holdout\n",
            "row 1: subset: value error, expected training, validation or testing, got 'holdout'",
        ),
        ("walk,1,2,walking,training\nwalk,3,4,walking,validation\n", "row 2: subset validation, but an earlier row"),
    ],
)
def test_each_bad_row_is_one_error_line(tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str],
                                        rows: str, expected: str) -> None:  # fmt: skip
    annotations = tmp_path / "actions.csv"
    annotations.write_text(rows)
    before = (features / "video_info_new.csv").read_bytes()
    capsys.readouterr()
    assert cli("data", "anet-annotations", str(annotations), "--features", str(features)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"visionzoo: error: {annotations}: ") and expected in line, line
    assert (features / "video_info_new.csv").read_bytes() == before and not (
        features / "anet_anno_action.json"
    ).exists()


def test_many_bad_rows_are_one_error_with_the_first_few(
    tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_text("walk,1,2,walking\n" + "run,5,4,running\n" * 200_000)
    line = error_line(capsys, "data", "anet-annotations", annotations, "--features", features)
    assert line.startswith(f"visionzoo: error: {annotations}: 200000 bad rows, nothing written: row 2: start 5 ")
    assert line.count("row ") == 5 and line.endswith("; ... and 199995 more")


def test_rows_of_videos_without_features_are_left_out_or_refused_when_strict(
    tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_text("walk,1,2,walking\nsurf,1,2,surfing\nsurf,3,4,surfing\nski,1,2,skiing\n")
    assert cli("data", "anet-annotations", annotations, "--features", features) == 0
    (warning,) = [r.getMessage() for r in caplog.records if "without features" in r.getMessage()]
    assert "3 rows of 2 videos without features" in warning
    written = json.loads((features / "anet_anno_action.json").read_text())
    assert written["walk"]["annotations"] == [{"segment": [1.0, 2.0], "label": "walking"}]
    line = error_line(capsys, "data", "anet-annotations", annotations, "--features", features, "--strict")
    assert f"{annotations}: 3 bad rows, nothing written: row 2: unknown video 'surf'" in line


@pytest.mark.parametrize(
    ("encoded", "named"),
    [
        ("\ufeffvideo,start,end,label\nwalk,1,2,marche à pied\n".encode(), None),  # Excel's "CSV UTF-8"
        ("video,start,end,label\nwalk,1,2,marche à pied\n".encode("cp1252"), "cp1252"),  # Excel's "CSV"
        ("video,start,end,label\nwalk,1,2,marche à pied\n".encode("utf-16"), "utf-16"),  # "Unicode text"
    ],
)
def test_csv_as_spreadsheets_write_it(
    tmp_path: Path, features: Path, caplog: pytest.LogCaptureFixture, encoded: bytes, named: str | None
) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_bytes(encoded)
    assert cli("data", "anet-annotations", annotations, "--features", features) == 0
    written = json.loads((features / "anet_anno_action.json").read_text())
    assert written["walk"]["annotations"] == [{"segment": [1.0, 2.0], "label": "marche à pied"}]
    said = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert said == ([] if named is None else [f"{annotations}: read as {named} (not UTF-8)"])


def test_csv_in_no_known_encoding_is_one_line(
    tmp_path: Path, features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_bytes(b"walk,1,2,\x81\x8d\x90\n")  # bytes that neither UTF-8 nor Windows-1252 define
    line = error_line(capsys, "data", "anet-annotations", annotations, "--features", features)
    assert (
        line
        == f"visionzoo: error: {annotations}: the annotation CSV is not text in UTF-8, UTF-16 or Windows-1252/Latin-1"
    )


def test_annotations_need_a_feature_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    annotations = tmp_path / "actions.csv"
    annotations.write_text("walk,1,2,walking\n")
    capsys.readouterr()
    assert cli("data", "anet-annotations", str(annotations), "--features", str(tmp_path / "none")) == 2
    assert "video_info_new.csv: missing; run visionzoo features first" in capsys.readouterr().err


def test_video_demo_is_deterministic_and_decodable(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from visionzoo.data.builtin.video_demo import make_video_demo
    from visionzoo.data.video import SnippetDecoder

    first = make_video_demo(tmp_path / "a", videos=3, seconds=(2.0, 4.0), size=(32, 24))
    assert cli("data", "make-video-demo", str(tmp_path / "b"), "--videos", "3") == 0
    again = make_video_demo(tmp_path / "c", videos=3, seconds=(2.0, 4.0), size=(32, 24))
    assert (first / "annotations.csv").read_text() == (again / "annotations.csv").read_text()
    with open(first / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["video"] for row in rows} == {"demo_000", "demo_001", "demo_002"}
    for name in ("demo_000", "demo_001", "demo_002"):
        decoder = SnippetDecoder(first / "videos" / f"{name}.mp4", 4, lambda w, h: (w, h, 0, 0), 0)
        assert all(frame.shape == (24, 32, 3) for frame in decoder)
        assert 2.0 <= decoder.meta.seconds <= 4.05
        for row in rows:
            if row["video"] == name:
                assert 0 <= float(row["start"]) < float(row["end"]) <= decoder.meta.seconds
    assert len(list((tmp_path / "b" / "videos").glob("*.mp4"))) == 3


def test_builtin_video_demo_is_a_trainable_feature_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data video-demo`: generated videos, their features and annotations, made once in the cache."""
    pytest.importorskip("av")
    from visionzoo.data.builtin import resolve_data, video_demo
    from visionzoo.errors import VisionZooError
    from visionzoo.export.feature_extractor import build_video_demo

    small = video_demo.make_video_demo
    monkeypatch.setattr(
        video_demo, "make_video_demo", lambda out: small(out, videos=4, seconds=(2.0, 3.0), size=(32, 24))
    )
    monkeypatch.setitem(video_demo.DEMO_FEATURES, "backbone", "tiny_test_net")
    monkeypatch.setitem(video_demo.DEMO_FEATURES, "img_size", 32)
    with pytest.raises(VisionZooError, match="video-demo features are not made yet"):
        resolve_data("video-demo", "activitynet", temporal_scale=T, feat_dim=16)
    root = build_video_demo(temporal_scale=T, feat_dim=16)
    assert resolve_data("video-demo", "activitynet", temporal_scale=T, feat_dim=16) == root
    assert json.loads((root / "features.json").read_text())["backbone"] == "tiny_test_net"
    train = ActivityNetFeatures(root, "train", T, 16, feature_dir=f"csv_mean_{T}", snippet_frames=8)
    assert len(train) == 3 and all(video.segments.size for video in train.videos)
    assert build_video_demo(temporal_scale=T, feat_dim=16) == root  # made once
    with pytest.raises(VisionZooError, match="--feat-dim 400: the built-in video features are 16-d"):
        build_video_demo(temporal_scale=T + 1, feat_dim=400)
