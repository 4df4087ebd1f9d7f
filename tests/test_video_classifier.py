"""The built-in video classifier: its metrics against the toolkit, and proposals -> detections on the demo data.

The oracle transcribes `compute_average_precision_classification` and `compute_video_hit_at_k` of the
ActivityNet toolkit's `Evaluation/eval_classification.py` (DataFrames as lists of rows, `np.float` as float).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_detection import ref_interpolated_prec_rec

from visionzoo.cli import main
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.models import create_model
from visionzoo.tasks.postprocess import write_results
from visionzoo.tasks.video_classification import classification_map, hit_at

# -------------------------------------------------------------------------- reference: eval_classification.py


def ref_compute_average_precision_classification(ground_truth, prediction):
    """ground_truth: video ids with the class; prediction rows (video-id, score) of the class."""
    npos = float(len(ground_truth))
    lock_gt = np.ones(len(ground_truth)) * -1
    sort_idx = np.array([row[1] for row in prediction]).argsort()[::-1]
    prediction = [prediction[i] for i in sort_idx]
    tp = np.zeros(len(prediction))
    fp = np.zeros(len(prediction))
    for idx in range(len(prediction)):
        this_pred = prediction[idx]
        gt_idx = [i for i, video in enumerate(ground_truth) if video == this_pred[0]]
        if not gt_idx:
            fp[idx] = 1
            continue
        if lock_gt[gt_idx[0]] >= 0:
            fp[idx] = 1
        else:
            tp[idx] = 1
            lock_gt[gt_idx] = idx
    tp = np.cumsum(tp).astype(float)
    fp = np.cumsum(fp).astype(float)
    rec = tp / npos
    prec = tp / (tp + fp)
    return ref_interpolated_prec_rec(prec, rec)


def ref_compute_video_hit_at_k(ground_truth, prediction, top_k=3):
    """ground_truth rows (video-id, label); prediction rows (video-id, label, score)."""
    video_ids = np.unique([row[0] for row in ground_truth])
    avg_hits_per_vid = np.zeros(video_ids.size)
    for i, vid in enumerate(video_ids):
        this_pred = [row for row in prediction if row[0] == vid]
        if not this_pred:
            continue
        sort_idx = np.array([row[2] for row in this_pred]).argsort()[::-1][:top_k]
        pred_label = [this_pred[j][1] for j in sort_idx]
        gt_label = [row[1] for row in ground_truth if row[0] == vid]
        avg_hits_per_vid[i] = np.ceil(np.mean([1 if this_label in pred_label else 0 for this_label in gt_label]))
    return float(avg_hits_per_vid.mean())


def test_metrics_equal_the_toolkit_classification_evaluation() -> None:
    rng = np.random.default_rng(0)
    videos, classes = 40, 6
    scores = np.round(rng.random((videos, classes)), 2)  # ties included
    positives = np.zeros((videos, classes), dtype=bool)
    positives[np.arange(videos), rng.integers(0, classes, videos)] = True
    positives[:5, 0] = True  # some videos have two classes
    positives[-3:] = False  # and some none: their predictions can only be false positives
    ground_truth = [(v, c) for v in range(videos) for c in range(classes) if positives[v, c]]
    prediction = [(v, c, scores[v, c]) for v in range(videos) for c in range(classes)]
    aps = [
        ref_compute_average_precision_classification(
            [v for v, label in ground_truth if label == c], [(v, s) for v, label, s in prediction if label == c]
        )
        for c in range(classes)
    ]
    assert classification_map(scores, positives) == 100.0 * float(np.mean(aps))
    for k in (1, 3):
        assert hit_at(scores, positives, k) == pytest.approx(
            100.0 * ref_compute_video_hit_at_k(ground_truth, prediction, k)
        )


# ------------------------------------------------------------------------------------ proposals -> detections


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0, argv
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small demo dataset and random BMN weights (its proposals are poor, the classes decide the detections)."""
    root = tmp_path_factory.mktemp("anet")
    data = make_anet_demo(root / "data", videos=120, seed=2)
    torch.manual_seed(0)
    weights = root / "bmn.safetensors"
    save_file(create_model("bmn").state_dict(), str(weights))
    return data, weights


@pytest.mark.slow
def test_classifier_detect_and_eval_detection_beat_random_labels(
    demo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, bmn = demo
    run = tmp_path / "classifier"
    assert main(["train", "anet_video_classifier", "--data", str(data), "--epochs", "8", "--workers", "0",
                 "--output", str(run)]) == 0  # fmt: skip
    metrics = cli_json(capsys, "eval", "anet_video_classifier", "--checkpoint", str(run / "best.safetensors"),
                       "--data", str(data), "--workers", "0")  # fmt: skip
    assert metrics["top1"] > 50.0 and metrics["top5"] >= metrics["top1"]  # 20 classes: chance is 5 %
    classes = json.loads(Path(metrics["classes_file"]).read_text())["results"]
    assert len(classes) == metrics["eval_videos"] == 30 and all(len(found) == 20 for found in classes.values())
    assert all(found[0]["score"] >= found[1]["score"] for found in classes.values())

    assert main(["eval", "bmn_anet", "--checkpoint", str(bmn), "--data", str(data), "--workers", "0",
                 "--output", str(tmp_path / "bmn")]) == 0  # fmt: skip
    rng = np.random.default_rng(0)
    labels = sorted({entry["label"] for found in classes.values() for entry in found})
    random_classes = {
        name: [{"label": str(label), "score": float(rng.random())} for label in rng.permutation(labels)]
        for name in classes
    }  # fmt: skip
    random_path = write_results(tmp_path / "random.json", random_classes)
    found = {}
    for name, class_file in (("classifier", metrics["classes_file"]), ("random", random_path)):
        detections = tmp_path / f"{name}.json"
        assert main(["detect", "--proposals", str(tmp_path / "bmn" / "proposals.json"), "--classes", str(class_file),
                     "--output", str(detections)]) == 0  # fmt: skip
        found[name] = cli_json(capsys, "eval-detection", "--ground-truth", str(data), "--detections", str(detections))
    assert found["classifier"]["average_mAP"] > 3 * found["random"]["average_mAP"], found
    assert found["classifier"]["mAP@0.50"] > found["random"]["mAP@0.50"] + 5.0, found


@pytest.mark.slow
def test_eval_with_classes_auto_trains_once_and_reports_detection_map(
    demo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data, bmn = demo
    argv = ["eval", "bmn_anet", "--checkpoint", str(bmn), "--data", str(data), "--workers", "0"]
    with caplog.at_level(logging.INFO, logger="visionzoo"):
        first = cli_json(capsys, *argv, "--classes", "auto", "--output", str(tmp_path / "a"))
        assert "--classes auto: training anet_video_classifier" in caplog.text
        caplog.clear()
        second = cli_json(capsys, *argv, "--classes", "auto", "--output", str(tmp_path / "b"))
        assert "trained before" in caplog.text and "training" not in caplog.text
    assert first == {**second, **{k: v for k, v in first.items() if k.endswith(("_file", "_plot"))}}
    keys = [f"mAP@{t:.2f}" for t in np.linspace(0.5, 0.95, 10)]
    assert all(key in first for key in [*keys, "average_mAP", "AR@100", "AUC"])
    # the task's number is eval-detection's on the file it wrote
    rescored = cli_json(capsys, "eval-detection", "--ground-truth", str(data), "--detections", first["detections_file"])
    assert rescored == {key: first[key] for key in [*keys, "average_mAP"]}

    capsys.readouterr()
    for options, message in (
        (["--classes", str(tmp_path / "none.json")], "none.json: no such classification file"),
        (["--classes", first["detections_file"], "--fusion", "mean"], "--fusion: expected one of product, sqrt"),
    ):
        assert main([*argv, *options, "--output", str(tmp_path / "c")]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("visionzoo: error: ") and message in line, line
