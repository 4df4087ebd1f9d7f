"""Detection mAP against a literal transcription of the ActivityNet toolkit, the `detect` fusion, the commands.

The oracle below transcribes `Evaluation/eval_detection.py` of activitynet/ActivityNet (ebc8aeb, the last
change to that file) and its `utils.py`, loop for loop. Only what cannot run here changed: pandas DataFrames
are lists of rows (groupby keeps row order, as pandas does), `iteritems` is `items`, the joblib pool is a
loop, `np.float` is `float`, and no blocked videos are fetched (`check_status=False`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from test_bmn_task import ref_segment_iou

from visionzoo.cli import main
from visionzoo.data.activitynet import load_annotations
from visionzoo.errors import VisionZooError
from visionzoo.tasks import detection, detection_metrics, postprocess
from visionzoo.tasks.anet_metrics import load_ground_truth
from visionzoo.tasks.postprocess import video_id

SHARED_ACTIVITYNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "activitynet"
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # the oracle's NaN tIoU
ANET_TIOU, THUMOS_TIOU = np.linspace(0.5, 0.95, 10), np.linspace(0.3, 0.7, 5)

# -------------------------------------------------------------------------- reference: eval_detection.py


def ref_interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    ap = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return ap


def ref_import_ground_truth(data, subset):
    activity_index, cidx = {}, 0
    video_lst, t_start_lst, t_end_lst, label_lst = [], [], [], []
    for videoid, v in data["database"].items():
        if subset != v["subset"]:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = cidx
                cidx += 1
            video_lst.append(videoid)
            t_start_lst.append(float(ann["segment"][0]))
            t_end_lst.append(float(ann["segment"][1]))
            label_lst.append(activity_index[ann["label"]])
    ground_truth = list(zip(video_lst, t_start_lst, t_end_lst, label_lst, strict=True))
    return ground_truth, activity_index


def ref_import_prediction(data, activity_index):
    video_lst, t_start_lst, t_end_lst = [], [], []
    label_lst, score_lst = [], []
    for videoid, v in data["results"].items():
        for result in v:
            label = activity_index[result["label"]]
            video_lst.append(videoid)
            t_start_lst.append(float(result["segment"][0]))
            t_end_lst.append(float(result["segment"][1]))
            label_lst.append(label)
            score_lst.append(result["score"])
    return list(zip(video_lst, t_start_lst, t_end_lst, label_lst, score_lst, strict=True))


def ref_compute_average_precision_detection(ground_truth, prediction, tiou_thresholds):
    """ground_truth rows (video-id, t-start, t-end, label), prediction rows (... label, score)."""
    ap = np.zeros(len(tiou_thresholds))
    if len(prediction) == 0:  # prediction.empty
        return ap

    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = np.array([row[4] for row in prediction]).argsort()[::-1]
    prediction = [prediction[i] for i in sort_idx]

    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))

    ground_truth_gbvn = {}  # ground_truth.groupby('video-id'); reset_index() adds the row's 'index'
    for index, row in enumerate(ground_truth):
        ground_truth_gbvn.setdefault(row[0], []).append((index, row[1], row[2]))

    for idx, this_pred in enumerate(prediction):
        try:
            ground_truth_videoid = ground_truth_gbvn[this_pred[0]]
        except Exception:
            fp[:, idx] = 1
            continue

        this_gt = ground_truth_videoid
        tiou_arr = ref_segment_iou(np.array(this_pred[1:3]), np.array([[row[1], row[2]] for row in this_gt]))
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt[jdx][0]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt[jdx][0]] = idx
                break

            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1

    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos

    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)

    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = ref_interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])

    return ap


def ref_evaluate(ground_truth_data, prediction_data, tiou_thresholds, subset="validation"):
    """ANETdetection(...).evaluate(): (ap [thresholds, classes], mAP, average_mAP, activity_index)."""
    ground_truth, activity_index = ref_import_ground_truth(ground_truth_data, subset)
    prediction = ref_import_prediction(prediction_data, activity_index)
    ap = np.zeros((len(tiou_thresholds), len(activity_index)))
    for _label_name, cidx in activity_index.items():
        ap[:, cidx] = ref_compute_average_precision_detection(
            ground_truth=[row for row in ground_truth if row[3] == cidx],
            prediction=[row for row in prediction if row[3] == cidx],
            tiou_thresholds=tiou_thresholds,
        )
    mAP = ap.mean(axis=1)
    return ap, mAP, mAP.mean(), activity_index


# ------------------------------------------------------------------------------------------------ helpers


def real_database() -> dict:
    """The shared BSN annotation pair as an ActivityNet database JSON (ids without "v_", the CSV's subsets)."""
    database = {}
    for video in load_annotations(SHARED_ACTIVITYNET):
        annotations = [
            {"segment": s.tolist(), "label": label} for s, label in zip(video.segments, video.labels, strict=True)
        ]
        database[video_id(video.name)] = {
            "subset": video.subset,
            "duration": video.duration_second,
            "annotations": annotations,
        }
    return {"version": "VERSION 1.3", "taxonomy": [], "database": database}


def random_detections(database: dict, seed: int, per_video: int = 1) -> dict:
    """Detections near the ground truth (right and wrong labels), random ones, exact repeats and tied scores,
    zero-length ones on zero-length instances (tIoU NaN), on validation, training and unknown videos."""
    rng = np.random.default_rng(seed)
    labels = sorted({a["label"] for v in database["database"].values() for a in v["annotations"]})
    results = {}
    names = list(database["database"])
    chosen = [n for n in names if database["database"][n]["subset"] == "validation"]
    chosen += list(rng.choice([n for n in names if n not in set(chosen)], 200, replace=False))
    chosen += [f"unknown{i}" for i in range(20)]
    for name in chosen:
        entry = database["database"].get(name, {"duration": 100.0, "annotations": []})
        duration, found = entry["duration"], []
        for ann in entry["annotations"]:
            start, end = ann["segment"]
            if end == start:  # the toolkit matches a zero-length detection on it through NaN
                found.append({"label": ann["label"], "score": 0.5, "segment": [start, end]})
            for _ in range(int(rng.integers(0, 3))):
                jitter = rng.normal(0.0, 0.15 * max(end - start, 1.0), 2)
                label = ann["label"] if rng.random() < 0.8 else labels[int(rng.integers(len(labels)))]
                segment = sorted([max(0.0, start + jitter[0]), end + jitter[1]])
                found.append({"label": label, "score": round(float(rng.random()), 2), "segment": segment})
        for _ in range(per_video):
            a, b = np.sort(rng.uniform(0.0, duration, 2))
            label = labels[int(rng.integers(len(labels)))]
            found.append({"label": label, "score": round(float(rng.random()), 2), "segment": [a, b]})
        if found and rng.random() < 0.2:
            found.append(dict(found[0]))  # an exact repeat
        results[name] = found
    return {"version": "VERSION 1.3", "results": results, "external_data": {}}


def cli_json(*argv: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------------------- the metric


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ACTIVITYNET.is_dir(), reason="real ActivityNet annotations not present")
def test_eval_detection_equals_toolkit_on_real_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = real_database()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(database))
    predictions = random_detections(database, seed=0)
    det_path = tmp_path / "detections.json"
    det_path.write_text(json.dumps(predictions))

    json_truth, bsn_truth = load_ground_truth(gt_path), load_ground_truth(SHARED_ACTIVITYNET)
    assert list(json_truth.labels) == list(bsn_truth.labels) and json_truth.labels == bsn_truth.labels
    assert len(bsn_truth.segments) == 4728
    detections = detection_metrics.load_detections(det_path)
    for thresholds, tiou in ((ANET_TIOU, "0.5:0.95:10"), (THUMOS_TIOU, "0.3:0.7:5")):
        ref_ap, ref_map, ref_average, activity_index = ref_evaluate(database, predictions, thresholds)
        ours = detection_metrics.evaluate_detections(bsn_truth, detections, thresholds)
        assert ours["classes"] == list(activity_index) and len(activity_index) == 200
        assert np.array_equal(ours["ap"], ref_ap)  # bit for bit
        assert np.array_equal(ours["mAP"], ref_map) and ours["average_mAP"] == ref_average
        assert 5.0 < 100 * ref_average < 95.0  # the detections are neither hopeless nor perfect
        printed = cli_json("eval-detection", "--ground-truth", str(gt_path), "--detections", str(det_path),
                           "--tiou", tiou, capsys=capsys)  # fmt: skip
        expected = {f"mAP@{t:.2f}": 100.0 * float(m) for t, m in zip(thresholds, ref_map, strict=True)}
        assert printed == expected | {"average_mAP": 100.0 * ref_average}


def det(label: str, start: float, end: float, score: float) -> dict:
    return {"label": label, "segment": [float(start), float(end)], "score": score}


def small_case(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A database with 3 classes over 4 validation videos and one training video."""
    database = {
        "a": {"subset": "validation", "annotations": [{"segment": [1.0, 5.0], "label": "run"},
                                                      {"segment": [8.0, 9.0], "label": "run"}]},
        "b": {"subset": "validation", "annotations": [{"segment": [0.0, 10.0], "label": "jump"}]},
        "c": {"subset": "validation", "annotations": [{"segment": [2.0, 4.0], "label": "swim"},
                                                      {"segment": [2.0, 4.0], "label": "swim"}]},
        "d": {"subset": "validation", "annotations": [{"segment": [3.0, 3.0], "label": "run"}]},
        "t": {"subset": "training", "annotations": [{"segment": [0.0, 1.0], "label": "fly"}]},
    }  # fmt: skip
    data = {"version": "VERSION 1.3", "taxonomy": [], "database": database}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path, data, database


def test_duplicates_ties_and_matching_order_equal_the_toolkit(tmp_path: Path) -> None:
    gt_path, data, _ = small_case(tmp_path)
    results = {
        "a": [det("run", 1, 5, 0.9), det("run", 1, 5, 0.9), det("run", 0.5, 9, 0.9), det("run", 7.5, 9.5, 0.4)],
        "b": [det("jump", 0, 6, 0.7), det("run", 0, 6, 0.95)],
        "c": [det("swim", 2, 4, 0.3), det("swim", 2.1, 4, 0.3), det("swim", 2, 4, 0.2)],
        "d": [det("run", 3, 3, 0.1)],  # zero-length on a zero-length instance: tIoU NaN, a match there
        "t": [det("jump", 0, 1, 0.99)],
        "elsewhere": [det("swim", 0, 1, 0.5)],
    }
    prediction = {"results": results}
    ours = detection_metrics.evaluate_detections(
        load_ground_truth(gt_path), detection_metrics.detection_table(results, "test"), ANET_TIOU
    )
    ref_ap, ref_map, ref_average, _ = ref_evaluate(data, prediction, ANET_TIOU)
    assert np.array_equal(ours["ap"], ref_ap) and ours["average_mAP"] == ref_average
    assert ours["classes"] == ["run", "jump", "swim"]  # first appearance in the subset, as the toolkit
    # swim: the detection on a video without swim ranks first (FP), then both identical instances are found
    # once each and the third detection is an FP: interpolated precision 2/3 at both recall steps, AP 2/3
    assert ref_ap[0, 2] == pytest.approx(2 / 3)


def test_unknown_labels_are_dropped_and_empty_classes_score_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gt_path, data, _ = small_case(tmp_path)
    known = {"a": [{"label": "run", "segment": [1.0, 5.0], "score": 0.9}],
             "b": [{"label": "jump", "segment": [0.0, 9.0], "score": 0.8}]}  # fmt: skip
    with_unknown = {
        name: [*items, {"label": "fly", "segment": [0.0, 1.0], "score": 0.99}] for name, items in known.items()
    }
    with caplog.at_level(logging.WARNING, logger="visionzoo"):
        ours = detection_metrics.evaluate_detections(
            load_ground_truth(gt_path), detection_metrics.detection_table(with_unknown, "test"), ANET_TIOU
        )
    assert "2 detections of 1 label(s) the ground truth lacks" in caplog.text and "fly" in caplog.text
    assert "1 of 3 classes have no detection" in caplog.text and "swim" in caplog.text
    ref_ap, _, ref_average, _ = ref_evaluate(data, {"results": known}, ANET_TIOU)  # the toolkit stops on "fly"
    assert np.array_equal(ours["ap"], ref_ap) and ours["average_mAP"] == ref_average
    assert np.all(ours["ap"][:, 2] == 0.0)


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_eval_detection_command_outputs_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt_path, _, _ = small_case(tmp_path)
    det = write_json(tmp_path / "det.json", {"results": {"b": [{"label": "jump", "segment": [0.0, 10.0], "score": 1}]}})
    csv_path, png_path = tmp_path / "out" / "per_class.csv", tmp_path / "out" / "map.png"
    capsys.readouterr()
    argv = ["eval-detection", "--ground-truth", str(gt_path), "--detections", str(det)]
    assert main([*argv, "--tiou", "0.3:0.7:5", "--per-class", str(csv_path), "--plot", str(png_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"mAP@{t:.2f} : {100 / 3:.2f}" for t in THUMOS_TIOU] + [f"average_mAP : {100 / 3:.2f}"]
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("class,instances,detections,AP@0.30") and rows[2].startswith("jump,1,1,100.0000")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    nan_score = write_json(
        tmp_path / "nan.json", {"results": {"b": [{"label": "jump", "segment": [0, 1], "score": float("nan")}]}}
    )
    no_label = write_json(tmp_path / "nolabel.json", {"results": {"b": [{"segment": [0, 1], "score": 1.0}]}})
    cases = [
        (["--detections", str(tmp_path / "missing.json")], "missing.json: no such detections file"),
        (["--detections", str(bad_json)], "bad.json: the detections file is not valid JSON"),
        (["--detections", str(gt_path)], "gt.json: results: field required, got dict"),
        (["--detections", str(nan_score)], "results.b[0]: segment and score must be finite numbers"),
        (["--detections", str(no_label)], "nolabel.json: results.b[0].label: field required"),
        (["--detections", str(det), "--tiou", "0.5:0.95"], "--tiou 0.5:0.95: expected LO:HI:N"),
        (["--detections", str(det), "--tiou", "0.9:0.5:3"], "needs 0 < LO <= HI <= 1"),
        (["--detections", str(det), "--tiou", "0.5:0.95:10000000"], "needs 0 < LO <= HI <= 1 and 1 <= N <= 1000"),
        (["--detections", str(det), "--subset", "testing"], "no video of subset 'testing'"),
    ]
    for options, message in cases:
        capsys.readouterr()
        assert main(["eval-detection", "--ground-truth", str(gt_path), *options]) == 2, options
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("visionzoo: error: ") and message in line, (options, line)


def test_thumos_class_files_as_ground_truth(tmp_path: Path) -> None:
    folder = tmp_path / "annotation"
    folder.mkdir()
    (folder / "HighJump_test.txt").write_text("video_test_0000004 10.0 12.5\nvideo_test_0000001 1.0 2.0\n")
    (folder / "Diving_test.txt").write_text("video_test_0000004 20.0 21.0\n\n")
    (folder / "Ambiguous_test.txt").write_text("video_test_0000004 30.0 31.0\n")
    (folder / "Diving_val.txt").write_text("video_validation_0000001 3.0 4.0\n")
    truth = load_ground_truth(folder, "test")
    assert list(truth.labels) == ["video_test_0000001", "video_test_0000004"]
    assert truth.labels["video_test_0000004"] == ["Diving", "HighJump"]
    assert truth.segments["video_test_0000004"].tolist() == [[20.0, 21.0], [10.0, 12.5]]
    assert load_ground_truth(folder, "validation").labels == {"video_validation_0000001": ["Diving"]}
    (folder / "Diving_test.txt").write_text("video_test_0000004 twenty 21.0\n")
    with pytest.raises(
        VisionZooError, match="Diving_test.txt: line 1: start: input should be a valid number, .*'twenty'"
    ):
        load_ground_truth(folder, "test")
    with pytest.raises(VisionZooError, match="--subset training: THUMOS14 class files exist for validation, test"):
        load_ground_truth(folder, "training")


# ---------------------------------------------------------------------------------------- detect (fusion)


def test_fusion_pairs_each_proposal_with_the_top_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposals = {"v_a": [{"segment": [1.0, 5.0], "score": 0.8}, {"segment": [0.0, 9.0], "score": 0.5}],
                 "b": [{"segment": [0.0, 10.0], "score": 0.9}]}  # fmt: skip
    classes = detection.classes_of(
        {"a": [{"label": "jump", "score": 0.2}, {"label": "run", "score": 0.7}, {"label": "swim", "score": 0.1}],
         "b": [{"label": "jump", "score": 0.6}]}, "test"
    )  # fmt: skip
    product = detection.fuse(proposals, classes, top_k=2, fusion="product", max_per_video=3)
    assert [(d["label"], d["segment"]) for d in product["a"]] == [
        ("run", [1.0, 5.0]),
        ("run", [0.0, 9.0]),
        ("jump", [1.0, 5.0]),
    ]
    assert [d["score"] for d in product["a"]] == [0.8 * 0.7, 0.5 * 0.7, 0.8 * 0.2]
    assert product["b"] == [{"label": "jump", "score": 0.9 * 0.6, "segment": [0.0, 10.0]}]
    rooted = detection.fuse(proposals, classes, top_k=2, fusion="sqrt", max_per_video=100)
    assert [d["score"] for d in rooted["a"]] == pytest.approx(np.sqrt([0.56, 0.35, 0.16, 0.1]).tolist())

    prop_path = postprocess.write_proposals(tmp_path / "proposals.json", proposals)
    class_path = postprocess.write_results(tmp_path / "classes.json", {"a": [{"label": "run", "score": 0.7}]})
    out = tmp_path / "det.json"
    capsys.readouterr()
    argv = ["detect", "--proposals", str(prop_path), "--classes", str(class_path), "--output", str(out)]
    assert main([*argv, "--fusion", "sqrt"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 2 detections of 1 videos"
    written = json.loads(out.read_text())
    assert written["version"] == "VERSION 1.3" and list(written["results"]) == ["a"]  # b has no classes
    assert written["results"]["a"][0] == {"label": "run", "score": pytest.approx(np.sqrt(0.56)), "segment": [1.0, 5.0]}

    bad_classes = write_json(tmp_path / "bad.json", {"results": {"a": [{"label": "run", "score": "high"}]}})
    other = write_json(tmp_path / "other.json", {"results": {"zzz": [{"label": "run", "score": 1.0}]}})
    cases = [
        (["--classes", str(bad_classes)], "results.a[0].score: input should be a valid number"),
        (["--classes", str(other)], "none of the 2 videos with proposals has classes"),
        (["--classes", str(class_path), "--top-k", "0"], "--top-k 0, --max-per-video 100: both must be at least 1"),
        (["--classes", str(prop_path)], "[0].label: field required"),
    ]
    for options, message in cases:
        capsys.readouterr()
        argv = ["detect", "--proposals", str(prop_path), "--output", str(tmp_path / "never.json"), *options]
        assert main(argv) == 2, options
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("visionzoo: error: ") and message in line, (options, line)
    assert not (tmp_path / "never.json").exists()
