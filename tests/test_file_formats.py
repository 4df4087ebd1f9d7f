"""Issue 21's hostile and careless inputs, each through the CLI: a result, or one `visionzoo: error:` line naming
the file and the place inside it (the schemas beside the readers); outputs that are links are replaced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line
from safetensors.torch import save_file

from visionzoo.cli import main
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.models import create_model

SMALL_BMN = ["--temporal-scale", "16", "--feat-dim", "32", "-b", "4", "-j", "0", "--amp", "off"]
TRUTH = {"version": "VERSION 1.3", "taxonomy": [],
         "database": {"a": {"subset": "validation", "duration": 20.0,
                            "annotations": [{"segment": [2.0, 8.0], "label": "run"}]}}}  # fmt: skip


def write(path: Path, value: object) -> Path:
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def detections(*entries: dict) -> dict:
    return {"results": {"a": list(entries)}}


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write(tmp_path / "gt.json", TRUTH)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("deep", "[" * 100_000 + "]" * 100_000,
         "the detections file nests 100000 levels deep, more than the 64 allowed"),
        ("int400", '{"results": {"a": [{"segment": [1, 2], "label": "run", "score": 1%s}]}}' % ("0" * 399),
         "the detections file holds an integer of 400 digits (at most 20)"),
        ("int5000", '{"results": {"a": [{"segment": [1, %s], "label": "run", "score": 1}]}}' % ("9" * 5000),
         "the detections file holds an integer of 5000 digits (at most 20)"),
        ("results_list", {"results": [1, 2]}, "results: input should be a valid dictionary, got list"),
        ("entry_number", {"results": {"a": [5]}}, "results.a[0]: input should be a valid dictionary"),
        ("segment_text", detections({"segment": ["x", 2], "label": "run", "score": 1}),
         "results.a[0].segment[0]: input should be a valid number, unable to parse string as a number, got 'x'"),
        ("infinite_end", detections({"segment": [1, 1e999], "label": "run", "score": 1}),
         "results.a[0]: segment and score must be finite numbers, got [1.0, inf, 1.0]"),
        ("nan_score", '{"results": {"a": [{"segment": [1, 2], "label": "run", "score": NaN}]}}',
         "results.a[0]: segment and score must be finite numbers"),
        ("not_utf8", b'{"results": {"\xff": []}}', "the detections file is not UTF-8 text (byte 14)"),
    ],
)  # fmt: skip
def test_detection_files_fault_is_one_line_with_its_place(
    tmp_path: Path, truth: Path, capsys: pytest.CaptureFixture[str], name: str, content: object, expected: str
) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(content) if isinstance(content, bytes) else write(path, content)
    line = error_line(capsys, "eval-detection", "--ground-truth", truth, "--detections", path)
    assert line.startswith(f"visionzoo: error: {path}: {expected}"), line


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ([1, 2], "database: input should be a valid dictionary, got list"),
        (7, "database: input should be a valid dictionary, got 7"),
        ({"a": {"subset": "validation", "duration": "n/a", "annotations": []}},
         "database.a.duration: input should be a valid number, unable to parse string as a number, got 'n/a'"),
        ({"a": {"subset": "validation", "annotations": [{"segment": [3, 1], "label": 5}]}},
         "database.a.annotations[0].label: input should be a valid string, got 5"),
    ],
)  # fmt: skip
def test_ground_truth_fault_names_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database: object, expected: str
) -> None:
    gt = write(tmp_path / "gt.json", TRUTH | {"database": database})
    proposals = write(tmp_path / "p.json", detections({"segment": [1, 2], "score": 1}))
    line = error_line(capsys, "eval-proposals", "--ground-truth", gt, "--proposals", proposals)
    assert line == f"visionzoo: error: {gt}: {expected}"


def test_reversed_segments_are_kept_as_the_toolkit_does_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = TRUTH | {"database": TRUTH["database"] | {"b": {"subset": "validation", "annotations": [
        {"segment": [9.0, 3.0], "label": "run"}]}}}  # fmt: skip
    gt_path = write(tmp_path / "gt.json", gt)
    found = detections(
        *[{"segment": [8.0, 2.0], "label": "run", "score": 0.5}] * 3, {"segment": [2, 8], "label": "run", "score": 0.9}
    )
    det = write(tmp_path / "det.json", found)
    capsys.readouterr()
    assert cli("eval-detection", "--ground-truth", gt_path, "--detections", det, "--json") == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "end before they start" in line]
    assert warnings == [
        f"visionzoo: warning: {gt_path}: 1 ground-truth segments end before they start; kept, as the ActivityNet "
        "toolkit reads them",
        f"visionzoo: warning: {det}: 3 segments end before they start; kept, as the ActivityNet toolkit scores "
        "them (tIoU 0)",
    ]
    assert json.loads(captured.out)["mAP@0.50"] == pytest.approx(50.0)  # a hit on a, b's reversed one missed


def test_eval_detection_refuses_a_huge_threshold_count(
    tmp_path: Path, truth: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    det = write(tmp_path / "det.json", detections({"segment": [2, 8], "label": "run", "score": 1}))
    line = error_line(
        capsys, "eval-detection", "--ground-truth", truth, "--detections", det, "--tiou", "0.5:0.95:10000000"
    )
    assert line == "visionzoo: error: --tiou 0.5:0.95:10000000: needs 0 < LO <= HI <= 1 and 1 <= N <= 1000"


# ------------------------------------------------------------------------------------------------ run files


def _finished_run(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("name: bmn_own\nmodel: bmn\nmain_metric: AUC\namp: 'off'\n")
    write(root / "summary.json", {"best": {"metric": "AUC", "value": 60.0, "epoch": 1}, "epochs": 1, "final": {}})
    (root / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.5, "AUC": 60.0}\n')
    return root


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("metrics.jsonl", b"5\n", "metrics.jsonl: line 1: the record: input should be a valid dictionary"),
        ("metrics.jsonl", b'{"epoch": 1}\n\x81\x8d\n', "metrics.jsonl: the metrics log is not text in UTF-8"),
        ("metrics.jsonl", b'{"epoch": "first"}\n', "metrics.jsonl: line 1: epoch: input should be a valid integer"),
        ("summary.json", b'{"best": 5}', "summary.json: best: input should be a valid dictionary or instance of Best"),
        ("summary.json", b"[]", "summary.json: the run summary: input should be a valid dictionary or instance"),
        ("config.yaml", b"world_size: many\n", "config.yaml: world_size: input should be a valid integer"),
        ("config.yaml", b"[" * 5000 + b"]" * 5000, "config.yaml: the run config nests 5000 levels deep, more than"),
        ("config.yaml", b"a: [1, 2\n", "config.yaml: the run config is not valid YAML (while parsing a flow sequence"),
    ],
)
def test_report_names_the_fault_of_a_run_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, content: bytes, expected: str
) -> None:
    run = _finished_run(tmp_path / "run")
    assert cli("report", run) == 0
    (run / file).write_bytes(content)
    line = error_line(capsys, "report", run)
    assert line.startswith(f"visionzoo: error: no run to report ({run}: {run}/"), line
    assert expected in line and "\n" not in line


def test_model_card_faults_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "bmn.safetensors"
    weights.write_bytes(b"")
    card = tmp_path / "bmn.safetensors.json"
    features = tmp_path / "v.csv"
    features.write_text("f0\n1\n")
    card.write_bytes(b'{"format": "visionzoo-model-card-v1", "model": "bmn\xe9"}')
    line = error_line(capsys, "predict", "bmn_anet", features, "--checkpoint", weights)
    assert line == f"visionzoo: error: {card}: the model card is not UTF-8 text (byte 51)"
    write(card, {"format": "visionzoo-model-card-v1", "model": "bmn", "task": "proposals",
                 "model_kwargs": {"feat_dim": "x"}, "input_shape": [400, 100], "preprocessing": {}})  # fmt: skip
    line = error_line(capsys, "predict", "bmn_anet", features, "--checkpoint", weights)
    assert line == (
        f"visionzoo: error: {card}: model_kwargs.feat_dim: input should be a valid integer, unable to parse "
        "string as an integer, got 'x'"
    )


@pytest.fixture(scope="module")
def anet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_anet_demo(tmp_path_factory.mktemp("anet") / "data", videos=12, seed=1, temporal_scale=16, feat_dim=32)


def test_resuming_another_recipes_run_is_refused_naming_both(
    tmp_path: Path, anet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert cli("train", "bmn_own", "--data", anet, *SMALL_BMN, "--epochs", "1", "--output", run) == 0
    config = (run / "config.yaml").read_bytes()
    line = error_line(capsys, "train", "bmn_anet", "--data", anet, *SMALL_BMN, "--epochs", "2", "--output", run,
                      "--resume", "auto")  # fmt: skip
    assert line == (
        f"visionzoo: error: {run / 'last.state.pt'}: a run of recipe bmn_own, not bmn_anet; resume it with "
        "`train bmn_own --resume`, or train bmn_anet in another --output"
    )
    assert (run / "config.yaml").read_bytes() == config


def test_a_state_without_config_is_one_line(tmp_path: Path, anet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "odd.state.pt"
    torch.save({"format": "visionzoo-state-v1", "world_size": 1, "model": {}}, state)
    line = error_line(capsys, "train", "bmn_own", "--data", anet, *SMALL_BMN, "--output", tmp_path / "r",
                      "--resume", state)  # fmt: skip
    assert line == f"visionzoo: error: {state}: config: field required, got dict"


def test_a_config_nested_5000_deep_is_one_line(tmp_path: Path, anet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000)
    line = error_line(capsys, "train", "bmn_own", "--data", anet, "--config", deep)
    assert line == f"visionzoo: error: {deep}: the --config nests 5000 levels deep, more than the 64 allowed"


@pytest.mark.parametrize(
    ("value", "expected"), [("-1", "must be >= 0, got -1"), ("100000", "must be <= 256, got 100000")]
)
def test_workers_are_bounded(anet: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str) -> None:
    line = error_line(capsys, "train", "bmn_own", "--data", anet, "--workers", value)
    assert line == f"visionzoo: error: --workers: {expected}"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ([1, 2], "the video record: input should be a valid dictionary or instance of RecordFile, got list"),
        ({"video": "a", "numFrame": 25, "seconds": 0, "fps": 25, "featureFrame": 16},
         "seconds: input should be greater than 0, got 0"),
        ({"video": "a", "numFrame": 25, "fps": 25}, "seconds: field required, got dict (and 1 more faults)"),
    ],
)  # fmt: skip
def test_merge_names_a_broken_video_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: object, expected: str
) -> None:
    out = tmp_path / "features"
    (out / "videos").mkdir(parents=True)
    spec = {"format": "visionzoo-features-v1", "backbone": "resnet18", "weights_sha256": None, "init_seed": 0,
            "layer": "pooled", "img_size": 224, "snippet_frames": 16, "temporal_scale": 100, "feat_dim": 512,
            "weights": None, "preprocessing": {}}  # fmt: skip
    write(out / "features.json", spec)
    write(out / "videos" / "a.json", record)
    line = error_line(capsys, "features", "--merge", "--output", out)
    assert line == f"visionzoo: error: {out / 'videos' / 'a.json'}: {expected}"


# ------------------------------------------------------------------------------------------------ outputs


def test_eval_proposals_plot_replaces_a_link_and_a_bad_folder_is_one_line(
    tmp_path: Path, truth: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proposals = write(tmp_path / "p.json", detections({"segment": [2, 8], "score": 1}))
    elsewhere = tmp_path / "precious.png"
    elsewhere.write_bytes(b"keep me")
    link = tmp_path / "curve.png"
    link.symlink_to(elsewhere)
    assert cli("eval-proposals", "--ground-truth", truth, "--proposals", proposals, "--plot", link) == 0
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x89PNG" and elsewhere.read_bytes() == b"keep me"
    blocked = tmp_path / "a_file" / "curve.png"  # its folder is a file: no folder can be made there (root too)
    (tmp_path / "a_file").write_text("")
    line = error_line(capsys, "eval-proposals", "--ground-truth", truth, "--proposals", proposals, "--plot", blocked)
    assert line.startswith(f"visionzoo: error: {blocked}: cannot write it (")


def test_demo_replaces_links_at_its_outputs(tmp_path: Path) -> None:
    data = make_anet_demo(tmp_path / "anet", videos=8, seed=1)
    weights = tmp_path / "bmn.safetensors"
    torch.manual_seed(0)
    save_file(create_model("bmn").state_dict(), str(weights))
    out = tmp_path / "demo"
    out.mkdir()
    targets = {}
    for name in ("demo.csv", "demo.png"):
        targets[name] = tmp_path / f"precious_{name}"
        targets[name].write_text("keep me")
        (out / name).symlink_to(targets[name])
    assert cli("demo", "--checkpoint", weights, "--data", data, "--output", out) == 0
    for name, target in targets.items():
        assert not (out / name).is_symlink() and target.read_text() == "keep me"
    assert (out / "demo.csv").read_text().startswith("xmin,xmax")


@pytest.mark.parametrize("backbone", ["tiny_test_net", "r2plus1d_18"])  # centre frames, and clips
def test_features_of_a_video_whose_timestamps_jump_is_refused_not_decoded_for_ever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backbone: str
) -> None:
    pytest.importorskip("av")
    from visionzoo.data.video import write_video

    video = write_video(tmp_path / "jump.mkv", [np.full((32, 32, 3), 80 * i, np.uint8) for i in range(3)], 25.0,
                        times=[0, 1e6, 2e6])  # fmt: skip
    options = ["--backbone", backbone, "--img-size", "32", "--snippet-frames", "8", "--temporal-scale", "8",
               "--amp", "off", "--output", tmp_path / "features", "--strict"]  # fmt: skip
    line = error_line(capsys, "features", video, *options)
    assert f"{video}: its timestamps jump to 1e+06 s after 1 decoded frames (at 25 fps)" in line
