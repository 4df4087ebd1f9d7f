"""THUMOS14-style long videos: the reader, sliding windows, the cross-window merge, training and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import FP32, assert_close

from visionzoo.cli import main
from visionzoo.commands.auto_classes import classes_file
from visionzoo.data import thumos14
from visionzoo.data.activitynet import format_csv_rows, write_video_info
from visionzoo.data.builtin import resolve_data
from visionzoo.data.feature_folder import write_feature_description
from visionzoo.data.thumos14 import LongVideo, SnippetWindows, WholeVideos, WindowRecord, load_long_videos
from visionzoo.errors import VisionZooError
from visionzoo.recipes import get_recipe
from visionzoo.tasks import detection, detection_metrics
from visionzoo.tasks.windowed_proposals import merge_video, window_proposals

FEAT_DIM = 6


def long_video(segments: list[list[float]], snippets: int = 300, features: Path = Path("none.npy")) -> LongVideo:
    """A video at 5 fps with 5-frame snippets: one snippet per second, so seconds are snippet indices."""
    labels = ["Diving"] * len(segments)
    return LongVideo("video_test_0000001", "test", float(snippets), 5.0, 5, snippets, features,
                     np.array(segments, dtype=np.float64).reshape(-1, 2), labels)  # fmt: skip


def write_dataset(root: Path, csv_video: bool = True) -> Path:
    """Three videos at 30 fps, 5-frame snippets: .npy features (one as CSV), class files, info CSV, features.json."""
    rng = np.random.default_rng(0)
    (root / "snippets").mkdir(parents=True)
    rows, lengths = [], {"video_validation_0000001": 40, "video_validation_0000002": 25, "video_test_0000001": 70}
    for name, length in lengths.items():
        values = rng.random((length, FEAT_DIM)).astype(np.float32)
        if csv_video and name.endswith("02"):
            header = (",".join(f"f{i}" for i in range(FEAT_DIM)) + "\n").encode()
            (root / "snippets" / f"{name}.csv").write_bytes(header + format_csv_rows(values))
        else:
            np.save(root / "snippets" / f"{name}.npy", values)
        subset = "test" if "test" in name else "validation"
        rows.append([name, length * 5, length * 5 / 30.0, 30.0, 30.0, subset, length * 5])
    write_video_info(root / "video_info_new.csv", rows)
    write_feature_description(root / "features.json", FEAT_DIM, 5, backbone="test")
    (root / "annotations").mkdir()
    (root / "annotations" / "Diving_val.txt").write_text(
        "video_validation_0000001 1.0 2.5\nvideo_validation_0000002 0.5 1.0\n"
    )
    (root / "annotations" / "HighJump_test.txt").write_text("video_test_0000001 3.0 5.0\n")
    (root / "annotations" / "Ambiguous_test.txt").write_text("video_test_0000001 6.0 7.0\n")
    return root


# ------------------------------------------------------------------------------------------------ windows


def test_window_starts_cover_the_video_and_align_the_last_to_its_end() -> None:
    assert thumos14.window_starts(300, 128, 64) == [0, 64, 128, 172]
    assert thumos14.window_starts(256, 128, 64) == [0, 64, 128]  # no repeated last window
    assert thumos14.window_starts(100, 128, 64) == [0]  # shorter than a window: one, zero-padded
    assert thumos14.window_starts(129, 128, 96) == [0, 1]
    assert thumos14.window_stride(128, 0.25) == 96 and thumos14.window_stride(128, 0.5) == 64
    with pytest.raises(VisionZooError, match="window overlap 1.0"):
        thumos14.window_stride(128, 1.0)


def test_instances_belong_to_a_window_when_more_than_ioa_of_them_is_inside() -> None:
    video = long_video([[10, 20], [60, 70], [60, 65.5], [1, 64.5]])
    first = thumos14.window_instances(video, 0, 64, 0.9)
    # [10, 20] whole; [60, 70] 40 % inside, [60, 65.5] 73 %: out; [1, 64.5] 98 %: in, clipped to the window
    assert first.tolist() == [[10 / 64, 20 / 64], [1 / 64, 1.0]]  # exact: multiples of 1/128
    second = thumos14.window_instances(video, 32, 64, 0.9)
    assert second.tolist() == [[(60 - 32) / 64, (70 - 32) / 64], [(60 - 32) / 64, (65.5 - 32) / 64]]
    training = SnippetWindows([long_video([[10, 20]])], 64, 0.5, 0.9, drop_empty=True, feat_dim=FEAT_DIM)
    evaluation = SnippetWindows([long_video([[10, 20]])], 64, 0.5, 0.9, drop_empty=False, feat_dim=FEAT_DIM)
    assert [w.start for w, _ in training.windows] == [0]  # windows without instances are not trained on
    assert [w.start for w, _ in evaluation.windows] == [0, 32, 64, 96, 128, 160, 192, 224, 236]
    with pytest.raises(VisionZooError, match="no window of 64 snippets holds an instance"):
        SnippetWindows([long_video([[0, 100]])], 64, 0.5, 0.9, drop_empty=True, feat_dim=FEAT_DIM)


def test_a_proposal_crossing_two_windows_is_merged_into_one() -> None:
    """Windows [0, 8) and [4, 12) s both see the action [3, 7] s; the merged Soft-NMS keeps it once."""
    video = long_video([[3.0, 7.0]], snippets=12)
    first, second = WindowRecord(video, 0, 8), WindowRecord(video, 4, 8)
    assert (first.offset_second, first.span_second, second.offset_second) == (0.0, 8.0, 4.0)
    in_first = [{"segment": [3.0, 7.0], "score": 0.9}, {"segment": [0.0, 1.0], "score": 0.3}]
    in_second = [{"segment": [0.0, 3.0], "score": 0.8}, {"segment": [6.0, 7.0], "score": 0.35},  # [4, 7], [10, 11]
                 {"segment": [7.5, 9.0], "score": 0.05}]  # fmt: skip
    windows = [window_proposals(in_first, first), window_proposals(in_second, second)]
    assert windows[1][:, :2].tolist() == [[4.0, 7.0], [10.0, 11.0], [11.5, 12.0]]  # clipped to the video's end

    def on_action(proposals: list[dict]) -> list[float]:
        return [p["score"] for p in proposals if min(p["segment"][1], 7.0) - max(p["segment"][0], 3.0) > 2.0]

    unmerged = [{"segment": row[:2].tolist(), "score": row[2]} for row in np.concatenate(windows)]
    assert on_action(unmerged) == [0.9, 0.8]  # each window found it
    merged = merge_video(windows, alpha=0.3, top_k=200)
    scores = on_action(merged)
    assert scores[0] == 0.9 and scores[1] == pytest.approx(0.8 * np.exp(-(0.75**2) / 0.3))  # tIoU 3/4
    assert [p["score"] for p in merged][:3] == [0.9, 0.35, 0.3]  # the copy now ranks below both others


# ------------------------------------------------------------------------------------------------- reader


def test_reader_loads_npy_and_csv_features_and_class_files(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data")
    videos = load_long_videos(root, "validation", FEAT_DIM)
    assert [v.name for v in videos] == ["video_validation_0000001", "video_validation_0000002"]
    first, second = videos
    assert (first.snippets, second.snippets, first.snippet_frames, first.fps) == (40, 25, 5, 30.0)
    assert second.features.suffix == ".npy" and second.features.parent != root / "snippets"  # CSV converted, cached
    assert first.segments.tolist() == [[1.0, 2.5]] and first.labels == ["Diving"]
    (test_video,) = load_long_videos(root, "test", FEAT_DIM)
    assert test_video.labels == ["HighJump"]  # Ambiguous_* is skipped

    windows = SnippetWindows([test_video], 32, 0.5, 0.9, drop_empty=False, feat_dim=FEAT_DIM)
    features, instances, record = windows[(len(windows) - 1, 0)]
    expected = np.load(root / "snippets" / "video_test_0000001.npy")
    assert record.start == 70 - 32 and torch.equal(features, torch.from_numpy(expected[38:70].T.copy()))
    short = SnippetWindows([second], 32, 0.5, 0.0, drop_empty=False, feat_dim=FEAT_DIM)
    features, instances, _ = short[(0, 0)]
    assert features.shape == (FEAT_DIM, 32) and torch.all(features[:, 25:] == 0)  # zero-padded past the end
    assert np.allclose(instances.numpy(), [[3.0 / 32, 6.0 / 32]])  # 0.5 s = 3 snippets at 6 per second
    pooled, video = WholeVideos([first], 8)[(0, 0)]
    assert video is first and pooled.shape == (FEAT_DIM, 8)
    rows = np.load(first.features)
    assert np.allclose(pooled[:, 0].numpy(), rows[:5].mean(axis=0), atol=1e-6)


def test_reader_names_each_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_dataset(tmp_path / "data", csv_video=False)
    broken = root / "snippets" / "video_validation_0000001.npy"
    values = np.ones((40, FEAT_DIM), dtype=np.float32)
    values[3, 2] = np.nan
    np.save(broken, values)
    with pytest.raises(VisionZooError, match="0000001.npy: 1 non-finite values, first at row 3, column 2"):
        load_long_videos(root, "validation", FEAT_DIM)
    np.save(broken, np.ones((40, FEAT_DIM + 1), dtype=np.float32))
    with pytest.raises(VisionZooError, match=r"shape \[40, 7\], expected \[snippets >= 1, feat_dim=6\]"):
        load_long_videos(root, "validation", FEAT_DIM)
    broken.unlink()
    with pytest.raises(
        VisionZooError, match="1 of 2 videos have no .npy or .csv features .first: video_validation_0000001"
    ):
        load_long_videos(root, "validation", FEAT_DIM)
    with pytest.raises(VisionZooError, match="no video of subset 'training' .it has: test, validation"):
        load_long_videos(root, "training", FEAT_DIM)
    with pytest.raises(VisionZooError, match="features of 6 dimensions, but --feat-dim is 8"):
        load_long_videos(root, "test", 8)
    (root / "features.json").unlink()
    with pytest.raises(VisionZooError, match="features.json: missing; give the snippet stride in frames"):
        load_long_videos(root, "test", FEAT_DIM)
    assert load_long_videos(root, "test", FEAT_DIM, snippet_frames=4)[0].snippet_frames == 4
    capsys.readouterr()  # the user's path: one line, exit status 2
    argv = ["train", "bmn_thumos14", "--data", str(root), "--feat-dim", str(FEAT_DIM), "--output", str(tmp_path / "r")]
    assert main(argv) == 2
    *_, line = capsys.readouterr().err.strip().splitlines()  # after the line saying --classes auto trains first
    assert line.startswith("visionzoo: error: ") and "snippet stride in frames with --snippet-frames" in line
    assert not (tmp_path / "r" / "last.state.pt").exists()


# ---------------------------------------------------------------------------------------- the whole path


def sliding_window_map(root: Path, classes: Path, window_seconds: tuple[float, ...]) -> float:
    """mAP@0.5 of the baseline: windows of fixed lengths at half-window strides, with the same video classes."""
    videos = load_long_videos(root, "test", 32)
    durations = {video.name: video.duration_second for video in videos}
    found = detection.baseline_detections(durations, detection.load_classes(classes), window_seconds)
    truth = detection_metrics.truth_of({video.name: (video.segments, video.labels) for video in videos})
    table = detection_metrics.detection_table(found, "baseline")
    return 100.0 * float(detection_metrics.evaluate_detections(truth, table, [0.5])["mAP"][0])


@pytest.mark.slow
def test_thumos_demo_trains_then_beats_sliding_windows_and_predict_uses_the_same_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shape = ["--data", "thumos-demo", "--feat-dim", "32", "--temporal-scale", "32", "--workers", "0"]
    short = ["--epochs", "2", "--eval-every", "2", "--lr", "1e-3"]
    assert main(["train", "bmn_thumos14", *shape, *short, "--output", str(run)]) == 0
    capsys.readouterr()
    weights = str(run / "best.safetensors")
    assert main(["eval", "bmn_thumos14", "--checkpoint", weights, *shape, "--amp", "off", "--json"]) == 0  # as predict
    metrics = json.loads(capsys.readouterr().out)

    recipe = get_recipe("bmn_thumos14").replace(feat_dim=32, data="thumos-demo")
    classes, root = classes_file(recipe), resolve_data("thumos-demo", "thumos14", feat_dim=32)  # both cached by now
    baselines = [sliding_window_map(root, classes, seconds) for seconds in ((1, 2, 4, 8, 16), (4,))]
    assert metrics["mAP@0.50"] > max(baselines) + 20.0, (metrics, baselines)

    name = sorted(json.loads((run / "proposals.json").read_text())["results"])[0]
    out = tmp_path / "predicted.json"
    argv = ["predict", "bmn_thumos14", str(root / "snippets" / f"{name}.npy"), "--checkpoint", weights, "--amp", "off"]
    assert main([*argv, "--video-info", str(root / "video_info_new.csv"), "--output", str(out)]) == 0
    predicted = json.loads(out.read_text())["results"][name]
    evaluated = json.loads((run / "proposals.json").read_text())["results"][name]
    assert len(predicted) == len(evaluated) == 200
    assert_close(torch.tensor([[*p["segment"], p["score"]] for p in predicted[:20]]),
                 torch.tensor([[*p["segment"], p["score"]] for p in evaluated[:20]]), FP32)  # fmt: skip


def test_demo_data_has_the_thumos14_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "make-thumos-demo", str(tmp_path / "demo"), "--videos", "6", "--feat-dim", "4"]) == 0
    root = Path(capsys.readouterr().out.strip())
    description = json.loads((root / "features.json").read_text())
    contract = {"format", "backbone", "weights", "weights_sha256", "layer", "img_size", "snippet_frames"}
    assert contract | {"temporal_scale", "feat_dim", "preprocessing"} == set(description)
    assert (
        len(list((root / "annotations").glob("*_val.txt")))
        == len(list((root / "annotations").glob("*_test.txt")))
        == 20
    )
    validation, test = (load_long_videos(root, subset, 4) for subset in ("validation", "test"))
    assert (len(validation), len(test)) == (4, 2)
    for video in validation + test:
        assert video.segments.shape[0] >= 1 and len(set(video.labels)) == 1  # many instances of one class
        assert video.snippets == int(video.duration_second * 30) // 5 and video.segments.max() <= video.duration_second
