"""ActivityNet features in the BSN/BMN layout: annotations, segment normalisation, the feature cache, demo data."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_ACTIVITYNET

from visionzoo.data import activitynet
from visionzoo.data.activitynet import (
    FEATURE_DIR,
    VIDEO_ANNO,
    VIDEO_INFO,
    ActivityNetFeatures,
    load_annotations,
    select_subset,
)
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.errors import VisionZooError

T, D = 8, 6


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path / "cache"))


def write_csv(path: Path, values: np.ndarray) -> None:
    header = ",".join(f"f{i}" for i in range(values.shape[1]))
    path.write_text(header + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in values) + "\n")


def write_dataset(root: Path, entries: dict[str, dict], subsets: dict[str, str]) -> Path:
    """A hand-made dataset: the JSON entries as given, random [T, D] features for every video."""
    (root / FEATURE_DIR).mkdir(parents=True)
    (root / VIDEO_ANNO).write_text(json.dumps(entries))
    lines = ["video,numFrame,seconds,fps,rfps,subset,featureFrame"]
    rng = np.random.default_rng(0)
    for name, subset in subsets.items():
        e = entries.get(name, {"duration_frame": 300, "duration_second": 10.0, "feature_frame": 288})
        lines.append(f"{name},{e['duration_frame']},{e['duration_second']},30.0,30.0,{subset},{e['feature_frame']}")
        write_csv(root / FEATURE_DIR / f"{name}.csv", rng.normal(size=(T, D)))
    (root / VIDEO_INFO).write_text("\n".join(lines) + "\n")
    return root


def entry(duration_second: float, duration_frame: int, feature_frame: int, segments: list[list[float]]) -> dict:
    annotations = [{"segment": s, "label": "Surfing"} for s in segments]
    return {
        "duration_second": duration_second,
        "duration_frame": duration_frame,
        "annotations": annotations,
        "feature_frame": feature_frame,
    }


@pytest.fixture
def small(tmp_path: Path) -> Path:
    entries = {f"v_{i}": entry(10.0 + i, 300 + 30 * i, 288 + 32 * i, [[1.0, 5.0 + i]]) for i in range(5)}
    subsets = {f"v_{i}": "validation" if i == 4 else "training" for i in range(5)}
    return write_dataset(tmp_path / "anet", entries, subsets)


def all_items(dataset: ActivityNetFeatures) -> list[tuple]:
    return [dataset[(i, 0)] for i in range(len(dataset))]


def test_segments_normalised_as_the_reference(tmp_path: Path) -> None:
    # corrected_second = feature_frame / duration_frame * duration_second = 2992 / 3000 * 100 = 99.7333...
    segments = [[10.0, 50.0], [90.0, 100.5], [0.0, 99.9], [99.8, 100.0]]
    root = write_dataset(tmp_path / "a", {"v_a": entry(100.0, 3000, 2992, segments)}, {"v_a": "training"})
    dataset = ActivityNetFeatures(root, "train", temporal_scale=T, feat_dim=D)
    corrected = 2992 / 3000 * 100.0
    assert dataset.videos[0].feature_second == pytest.approx(99.73333333333333, abs=1e-12)
    features, normalised, video = dataset[(0, 3)]
    expected = [[10 / corrected, 50 / corrected], [90 / corrected, 1.0], [0.0, 1.0], [1.0, 1.0]]
    assert video.name == "v_a" and normalised.dtype == features.dtype
    np.testing.assert_allclose(normalised.numpy(), np.array(expected, dtype=np.float32), rtol=0, atol=0)
    assert normalised[0].tolist() == pytest.approx([0.100267379, 0.501336898], abs=1e-7)
    raw = np.loadtxt(root / FEATURE_DIR / "v_a.csv", delimiter=",", skiprows=1, dtype=np.float32)
    assert features.shape == (D, T) and np.array_equal(features.numpy(), raw.T)


def test_subsets_follow_the_reference_substring_rule(small: Path) -> None:
    assert [v.name for v in ActivityNetFeatures(small, "train", T, D).videos] == ["v_0", "v_1", "v_2", "v_3"]
    assert [v.name for v in ActivityNetFeatures(small, "validation", T, D).videos] == ["v_4"]
    assert len(ActivityNetFeatures(small, "all", T, D)) == 5
    with pytest.raises(VisionZooError, match="subset 'test'"):
        select_subset(load_annotations(small), "test")


def test_cache_is_reused_without_parsing(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ActivityNetFeatures(small, "all", T, D)
    before = all_items(first)

    def no_parsing(*args: object) -> None:
        raise AssertionError("CSV parsed again")

    monkeypatch.setattr(activitynet, "read_feature_csv", no_parsing)
    second = ActivityNetFeatures(small, "all", T, D)
    assert second.cache_path == first.cache_path
    for (f1, s1, i1), (f2, s2, i2) in zip(before, all_items(second), strict=True):
        assert torch_equal(f1, f2) and torch_equal(s1, s2) and i1.name == i2.name
    assert not [p for p in first.cache_path.parent.iterdir() if ".tmp" in p.name]


def torch_equal(a: object, b: object) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_cache_invalidated_when_a_source_changes(small: Path) -> None:
    first = ActivityNetFeatures(small, "all", T, D)
    new_values = np.full((T, D), 7.5)
    path = small / FEATURE_DIR / "v_2.csv"
    write_csv(path, new_values)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = ActivityNetFeatures(small, "all", T, D)
    assert second.cache_path != first.cache_path
    assert np.array_equal(second[(2, 0)][0].numpy(), new_values.T.astype(np.float32))
    assert not np.array_equal(first[(2, 0)][0].numpy(), second[(2, 0)][0].numpy())
    assert np.array_equal(first[(1, 0)][0].numpy(), second[(1, 0)][0].numpy())


def test_interrupted_build_leaves_no_cache(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_reader = activitynet.read_feature_csv

    def fails_on_third(*args: object) -> np.ndarray:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_reader(*args)

    monkeypatch.setattr(activitynet, "read_feature_csv", fails_on_third)
    with pytest.raises(KeyboardInterrupt):
        ActivityNetFeatures(small, "all", T, D)
    monkeypatch.setattr(activitynet, "read_feature_csv", real_reader)
    dataset = ActivityNetFeatures(small, "all", T, D)
    assert sorted(p.name for p in dataset.cache_path.parent.iterdir()) == ["build.lock", "features.npy", "index.json"]
    raw = np.loadtxt(small / FEATURE_DIR / "v_4.csv", delimiter=",", skiprows=1, dtype=np.float32)
    assert np.array_equal(dataset[(4, 0)][0].numpy(), raw.T)


def test_missing_feature_files_listed_in_one_error(small: Path) -> None:
    (small / FEATURE_DIR / "v_1.csv").unlink()
    (small / FEATURE_DIR / "v_3.csv").unlink()
    with pytest.raises(VisionZooError) as err:
        ActivityNetFeatures(small, "all", T, D)
    message = str(err.value)
    assert FEATURE_DIR in message and "2 of 5 feature files missing" in message
    assert "v_1.csv" in message and "v_3.csv" in message and "\n" not in message


@pytest.mark.parametrize(
    ("values", "header_dim", "expected"),
    [
        (np.zeros((T - 1, D)), D, "7 data rows, expected temporal_scale=8"),
        (np.zeros((T, D + 1)), D + 1, "header has 7 columns, expected feat_dim=6"),
        (np.zeros((T, D + 1)), D, "data rows have 7 values, expected feat_dim=6"),
        (np.where(np.eye(T, D) > 0, np.nan, 0.0), D, "non-finite values, first nan at data row 1, column f0"),
        (np.full((T, D), np.inf), D, f"{T * D} non-finite values"),
    ],
)
def test_bad_feature_file_named(small: Path, values: np.ndarray, header_dim: int, expected: str) -> None:
    path = small / FEATURE_DIR / "v_2.csv"
    write_csv(path, values)
    if header_dim != values.shape[1]:  # a header that disagrees with the rows
        lines = path.read_text().splitlines()
        lines[0] = ",".join(f"f{i}" for i in range(header_dim))
        path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VisionZooError) as err:
        ActivityNetFeatures(small, "all", T, D)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_ragged_rows_named(small: Path) -> None:
    path = small / FEATURE_DIR / "v_0.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VisionZooError, match=r"v_0\.csv: malformed feature CSV \(the number of columns changed"):
        ActivityNetFeatures(small, "all", T, D)


def test_annotation_errors_name_the_file(small: Path) -> None:
    entries = json.loads((small / VIDEO_ANNO).read_text())
    del entries["v_1"], entries["v_3"]
    (small / VIDEO_ANNO).write_text(json.dumps(entries))
    with pytest.raises(VisionZooError, match=rf"{VIDEO_ANNO}: 2 of the 5 videos in {VIDEO_INFO} have no annotation"):
        load_annotations(small)
    entries["v_1"] = entry(10.0, 300, 288, [[5.0, 2.0]])
    entries["v_3"] = entry(10.0, 0, 288, [])
    (small / VIDEO_ANNO).write_text(json.dumps(entries))
    with pytest.raises(VisionZooError, match=rf"{VIDEO_ANNO}: v_3.duration_frame: input should be greater than 0"):
        load_annotations(small)
    entries["v_3"] = entry(10.0, 300, 288, [])
    (small / VIDEO_ANNO).write_text(json.dumps(entries))
    with pytest.raises(VisionZooError, match=rf"{VIDEO_ANNO}: v_1.annotations\[0\].segment: must be \[start, end\]"):
        load_annotations(small)
    (small / VIDEO_INFO).write_text("video,subset\nv_0,training\nv_1\n")
    with pytest.raises(VisionZooError, match=rf"{VIDEO_INFO}: line 3 has 1 fields, the header has 2"):
        load_annotations(small)
    (small / VIDEO_INFO).unlink()
    with pytest.raises(VisionZooError, match=rf"{VIDEO_INFO}: missing video info CSV"):
        load_annotations(small)


def test_demo_data_in_the_real_layout_and_deterministic(tmp_path: Path) -> None:
    root = make_anet_demo(tmp_path / "demo", videos=12, seed=3, temporal_scale=T, feat_dim=D)
    again = make_anet_demo(tmp_path / "again", videos=12, seed=3, temporal_scale=T, feat_dim=D)
    other = make_anet_demo(tmp_path / "other", videos=12, seed=4, temporal_scale=T, feat_dim=D)
    for name in (VIDEO_INFO, VIDEO_ANNO):
        assert (root / name).read_bytes() == (again / name).read_bytes() != (other / name).read_bytes()
    info = (root / VIDEO_INFO).read_text().splitlines()
    assert info[0] == "video,numFrame,seconds,fps,rfps,subset,featureFrame" and len(info) == 13
    database = json.loads((root / VIDEO_ANNO).read_text())
    for value in database.values():
        assert list(value) == ["duration_second", "duration_frame", "annotations", "feature_frame"]
        assert value["annotations"] and all(list(a) == ["segment", "label"] for a in value["annotations"])
        assert value["feature_frame"] % 16 == 0 and abs(value["feature_frame"] - value["duration_frame"]) < 32
    train, val = ActivityNetFeatures(root, "train", T, D), ActivityNetFeatures(root, "validation", T, D)
    assert (len(train), len(val)) == (9, 3)
    assert Counter(v.subset for v in load_annotations(root)) == {"training": 9, "validation": 3}
    features, segments, _ = train[(0, 0)]
    assert features.shape == (D, T) and segments.shape == (len(train.videos[0].labels), 2)
    assert (segments >= 0).all() and (segments <= 1).all() and (segments[:, 1] >= segments[:, 0]).all()


def test_demo_actions_are_learnable(tmp_path: Path) -> None:
    """One direction in feature space, the inside-minus-outside mean over training bins, ranks validation bins."""
    from sklearn.metrics import roc_auc_score

    root = make_anet_demo(tmp_path / "demo", videos=120, seed=0)

    def bins(subset: str) -> tuple[np.ndarray, np.ndarray]:
        dataset = ActivityNetFeatures(root, subset)
        centres = (np.arange(100) + 0.5) / 100
        features, inside = [], []
        for i in range(len(dataset)):
            video_features, segments, _ = dataset[(i, 0)]
            bounds = segments.numpy()
            inside.append(((centres[:, None] >= bounds[:, 0]) & (centres[:, None] <= bounds[:, 1])).any(1))
            features.append(video_features.numpy().T)
        return np.concatenate(features), np.concatenate(inside)

    x_train, y_train = bins("train")
    x_val, y_val = bins("validation")
    direction = x_train[y_train].mean(0) - x_train[~y_train].mean(0)
    assert 0.2 < y_val.mean() < 0.8 and roc_auc_score(y_val, x_val @ direction) > 0.85  # chance is 0.5


@pytest.mark.skipif(not (SHARED_ACTIVITYNET / VIDEO_ANNO).exists(), reason="real ActivityNet annotations absent")
def test_real_annotation_pair() -> None:
    videos = load_annotations(SHARED_ACTIVITYNET)
    assert len(videos) == 19_228
    assert Counter(v.subset for v in videos) == {"training": 9_649, "validation": 4_728, "testing": 4_851}
    instances = Counter()
    for video in videos:
        instances[video.subset] += len(video.segments)
    assert instances == {"training": 14_859, "validation": 7_293, "testing": 0}
    assert len(select_subset(videos, "train")) == 9_649 and len(select_subset(videos, "validation")) == 4_728
    first = videos[0]
    assert first.name == "v_---9CpRcKoU" and first.feature_second == pytest.approx(400 / 418 * 14.07)


def test_training_augmentation_is_a_function_of_seed_epoch_index() -> None:
    """Temporal jitter moves the segments with the features; dropout keeps the mean; the same key, the same item."""
    T = 64
    segments = np.array([[0.3, 0.55], [0.7, 0.9]], dtype=np.float32)
    centres = (np.arange(T) + 0.5) / T
    inside = ((centres[None] >= segments[:, :1]) & (centres[None] < segments[:, 1:])).any(axis=0)
    features = np.repeat(inside[None].astype(np.float32), 3, axis=0)  # [D, T]: 1 inside the actions
    augment = activitynet.FeatureAugment(seed=5, jitter=0.3)
    for epoch in range(20):
        moved_features, moved = augment(features, segments, epoch, index=7)
        again = augment(features, segments, epoch, index=7)
        np.testing.assert_array_equal(moved_features, again[0])
        np.testing.assert_array_equal(moved, again[1])
        cover = ((centres[None] >= moved[:, :1]) & (centres[None] < moved[:, 1:])).any(axis=0)
        margin = np.abs(centres[None] - moved.reshape(-1, 1)).min(axis=0) > 2.0 / T  # away from the boundaries
        np.testing.assert_array_equal(moved_features[0, margin] > 0.5, cover[margin])
    assert not np.array_equal(augment(features, segments, 0, 7)[1], augment(features, segments, 1, 7)[1])
    dropped, same = activitynet.FeatureAugment(seed=0, dropout=0.25)(np.ones((400, T), np.float32), segments, 0, 0)
    assert abs((dropped == 0).mean() - 0.25) < 0.01 and abs(dropped.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(same, segments)
