"""`visionzoo features`: raw videos -> the BSN/BMN feature layout, through the CLI as a user runs it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line
from video_files import indexed_video, zero_frame_video

from visionzoo.cli import main
from visionzoo.data.activitynet import pool_snippets, read_feature_csv
from visionzoo.data.feature_folder import FEATURES_FORMAT
from visionzoo.files import temporary_path
from visionzoo.models import create_model

pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_thread")

from visionzoo.data.transforms import input_geometry  # noqa: E402
from visionzoo.data.video import SnippetDecoder  # noqa: E402
from visionzoo.export.feature_extractor import ExtractionSettings, load_featurizer  # noqa: E402

T, S, IMG = 8, 8, 32
OPTIONS = ["--backbone", "tiny_test_net", "--img-size", str(IMG), "--snippet-frames", str(S),
           "--temporal-scale", str(T), "--amp", "off"]  # fmt: skip
LENGTHS = {"alpha.mp4": 70, "bravo.webm": 45, "charlie.avi": 100, "delta.mkv": 33, "echo.mp4": 5}
CONTRACT_KEYS = {"format", "backbone", "weights", "weights_sha256", "layer", "img_size", "snippet_frames",
                 "temporal_scale", "feat_dim", "preprocessing"}  # fmt: skip


def cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name, frames in LENGTHS.items():
        indexed_video(folder / name, frames, fps=25.0 if name != "bravo.webm" else 15.0)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in files}


def info_rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "video_info_new.csv", newline="") as handle:
        return {row["video"]: row for row in csv.DictReader(handle)}


def test_features_layout_is_the_contract(tmp_path: Path, videos: Path) -> None:
    out = tmp_path / "features"
    assert cli("features", str(videos), *OPTIONS, "--output", str(out), "--keep-snippets") == 0
    spec = json.loads((out / "features.json").read_text())
    assert set(spec) >= CONTRACT_KEYS and spec["format"] == FEATURES_FORMAT
    assert (spec["backbone"], spec["layer"], spec["img_size"], spec["snippet_frames"], spec["temporal_scale"]) == (
        "tiny_test_net", "pre_logits", IMG, S, T)  # fmt: skip
    assert spec["feat_dim"] == 16 and spec["weights"] is None and spec["preprocessing"]["crop_pct"] == 0.875

    rows = info_rows(out)
    with open(out / "video_info_new.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"]
    featurizer = load_featurizer(ExtractionSettings("tiny_test_net", img_size=IMG, amp="off"))
    prep = featurizer.preprocessing
    for file, frames in LENGTHS.items():
        name = Path(file).stem
        snippets = np.load(out / "snippets" / f"{name}.npy")
        length = max(1, frames // S)
        assert snippets.shape == (length, 16) and snippets.dtype == np.float32
        row = rows[name]
        fps = 15.0 if name == "bravo" else 25.0
        assert (int(row["numFrame"]), int(row["featureFrame"]), row["subset"]) == (frames, length * S, "testing")
        assert float(row["fps"]) == fps and float(row["seconds"]) == pytest.approx(frames / fps)
        # row i is the backbone's features of snippet i's centre frame, prepared as evaluation prepares images
        decoded = np.stack(list(SnippetDecoder(videos / file, S, lambda w, h: input_geometry(prep, w, h), IMG)))
        np.testing.assert_allclose(snippets, featurizer(decoded), rtol=1e-6, atol=1e-7)
        table = read_feature_csv(out / f"csv_mean_{T}" / f"{name}.csv", T, 16)
        expected = pool_snippets(snippets, T, S, frames, frames / fps)
        np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-6)  # 6 significant digits in the CSV


def test_logits_layer_and_pretrained_weights_recorded(tmp_path: Path, videos: Path) -> None:
    torch.manual_seed(3)
    weights = tmp_path / "tiny.pt"
    torch.save(create_model("tiny_test_net", num_classes=7).state_dict(), weights)
    out = tmp_path / "logits"
    options = [*OPTIONS, "--layer", "logits", "--pretrained", str(weights), "--output", str(out)]
    assert cli("features", str(videos / "alpha.mp4"), *options) == 0
    spec = json.loads((out / "features.json").read_text())
    assert spec["feat_dim"] == 7 and spec["layer"] == "logits" and spec["init_seed"] is None
    assert spec["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert read_feature_csv(out / f"csv_mean_{T}" / "alpha.csv", T, 7).shape == (T, 7)


def test_rerun_skips_finished_videos_and_workers_agree(tmp_path: Path, videos: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "features"
    assert cli("features", str(videos), *OPTIONS, "--output", str(out), "--workers", "2") == 0
    before = snapshot(out)
    capsys.readouterr()
    assert cli("features", str(videos), *OPTIONS, "--output", str(out)) == 0
    assert "0 extracted, 5 already done" in capsys.readouterr().out
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != "video_info_new.csv"} == {
        k: v for k, v in before.items() if k != "video_info_new.csv"
    }
    serial = tmp_path / "serial"
    assert cli("features", str(videos), *OPTIONS, "--output", str(serial)) == 0
    for name in LENGTHS:
        csv_name = f"csv_mean_{T}/{Path(name).stem}.csv"
        assert (serial / csv_name).read_bytes() == (out / csv_name).read_bytes()  # 2 decoding workers, same files


def test_unreadable_videos_are_named_counted_and_skipped(tmp_path: Path, videos: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (videos / "notes.mp4").write_text("not a video at all\n")
    zero_frame_video(videos / "nothing.avi")
    data = (videos / "alpha.mp4").read_bytes()
    (videos / "cut.mp4").write_bytes(data[: len(data) // 2])
    out = tmp_path / "features"
    capsys.readouterr()
    assert cli("features", str(videos), *OPTIONS, "--output", str(out)) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("visionzoo: warning:")]
    bad = ("notes.mp4", "nothing.avi", "cut.mp4")
    named = {name: [line for line in warnings if f"{name}:" in line] for name in bad}
    assert all(len(lines) == 1 for lines in named.values()), warnings
    assert "zero-length" in named["nothing.avi"][0] and "not a video FFmpeg can read" in named["notes.mp4"][0]
    assert "5 extracted, 0 already done, 3 skipped (unreadable): cut, notes, nothing" in captured.out
    assert sorted(info_rows(out)) == sorted(Path(name).stem for name in LENGTHS)
    assert not any(p.name.startswith(".") for p in out.rglob("*"))

    nothing = tmp_path / "nothing"  # only unreadable inputs: a run that extracted nothing is an error
    bad_only = [str(videos / name) for name in bad]
    line = error_line(capsys, "features", *bad_only, *OPTIONS, "--output", str(nothing))
    assert "none of the 3 videos could be read" in line and "nothing was extracted" in line

    strict = tmp_path / "strict"
    line = error_line(capsys, "features", str(videos / "notes.mp4"), *OPTIONS, "--output", str(strict), "--strict")
    assert line.startswith("visionzoo: error: ") and "notes.mp4: not a video FFmpeg can read" in line
    assert not (strict / f"csv_mean_{T}").exists()


def test_shards_fill_one_folder_like_one_process(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    whole, shared = tmp_path / "whole", tmp_path / "shared"
    assert cli("features", str(videos), *OPTIONS, "--output", str(whole)) == 0
    capsys.readouterr()
    assert cli("features", str(videos), *OPTIONS, "--output", str(shared), "--shard", "1/2") == 0
    first = set(json.loads(p.read_text())["video"] for p in (shared / "videos").glob("*.json"))
    monkeypatch.setenv("RANK", "1")  # as torchrun starts the second of two processes
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli("features", str(videos), *OPTIONS, "--output", str(shared)) == 0
    second = set(json.loads(p.read_text())["video"] for p in (shared / "videos").glob("*.json")) - first
    out = capsys.readouterr().out
    assert "(shard 1/2:" in out and "(shard 2/2:" in out
    assert first and second and first | second == {Path(name).stem for name in LENGTHS}
    assert info_rows(shared) == info_rows(whole)
    for path in (whole / f"csv_mean_{T}").iterdir():
        assert (shared / f"csv_mean_{T}" / path.name).read_bytes() == path.read_bytes()


def test_merge_rebuilds_the_info_and_clears_leftovers(tmp_path: Path, videos: Path) -> None:
    out = tmp_path / "features"
    assert cli("features", str(videos), *OPTIONS, "--output", str(out)) == 0
    expected = (out / "video_info_new.csv").read_text()
    (out / "video_info_new.csv").unlink()
    dead = temporary_path(out / f"csv_mean_{T}" / "alpha.csv", pid=999999999)
    dead.write_text("f0,f1\n0.1,")  # what a killed process leaves
    assert cli("features", "--merge", "--output", str(out)) == 0
    assert (out / "video_info_new.csv").read_text() == expected and not dead.exists()


def test_a_rerun_clears_leftovers_of_dead_processes_only(tmp_path: Path, videos: Path) -> None:
    out = tmp_path / "features"
    folder = out / f"csv_mean_{T}"
    folder.mkdir(parents=True)
    dead = temporary_path(folder / "alpha.csv", pid=999999999)
    live = temporary_path(folder / "bravo.csv", pid=os.getppid())  # a running process's file
    other = temporary_path(folder / "delta.csv", pid=12, host="elsewhere")  # another machine's shard
    for path in (dead, live, other):
        path.write_text("partial")
    assert cli("features", str(videos / "echo.mp4"), *OPTIONS, "--output", str(out)) == 0
    assert not dead.exists() and live.exists() and other.exists()


def test_a_folder_of_other_files_is_not_written_into(tmp_path: Path, videos: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "anet"
    (out / "csv_mean_8").mkdir(parents=True)
    (out / "csv_mean_8" / "alpha.csv").write_text("f0\n1.0\n")  # someone's features, same name as a video
    line = error_line(capsys, "features", str(videos), *OPTIONS, "--output", str(out))
    assert f"--output {out}: exists and is not a feature folder (no features.json)" in line
    assert (out / "csv_mean_8" / "alpha.csv").read_text() == "f0\n1.0\n" and not (out / "features.json").exists()


def test_features_of_another_kind_are_refused(tmp_path: Path, videos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "features"
    assert cli("features", str(videos / "alpha.mp4"), *OPTIONS, "--output", str(out)) == 0
    before = snapshot(out)
    options = [*OPTIONS[:3], "48", *OPTIONS[4:]]
    line = error_line(capsys, "features", str(videos), *options, "--output", str(out))
    assert f"{out}: holds features of another kind (img_size {IMG} vs 48" in line
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--backbone", "tiny_test_net", "--pretrained", "nowhere.pt"], "--pretrained nowhere.pt: no such weights"),
        (["--backbone", "bmn"], "--backbone bmn: not an image classifier"),
        (["--backbone", "tiny_test_net", "--shard", "3/2"], "--shard 3/2: expected K/N with 1 <= K <= N"),
        (["--backbone", "tiny_test_net", "--snippet-frames", "0"], "--snippet-frames 0: must be >= 1"),
        (["--backbone", "no_such_model"], "'no_such_model': neither a recipe nor a registered model"),
    ],
)
def test_bad_options_end_in_one_line(tmp_path: Path, videos: Path, capsys: pytest.CaptureFixture[str],
                                     argv: list[str], expected: str) -> None:  # fmt: skip
    out = tmp_path / "features"
    assert expected in error_line(capsys, "features", str(videos), *argv, "--output", str(out))
    assert not out.exists()


def test_without_pyav_one_line_says_what_to_install(tmp_path: Path, videos: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "av", None)
    line = error_line(capsys, "features", str(videos), *OPTIONS, "--output", str(tmp_path / "f"), "--strict")
    assert "pip install 'visionzoo[video]'" in line


@pytest.mark.slow  # a subprocess killed mid-run, then a rerun: about 15 s on two shared cores
def test_kill_9_in_the_middle_then_rerun_finishes_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(10):
        indexed_video(folder / f"clip{i}.mp4", 120, fps=25.0)
    out = tmp_path / "features"
    command = [sys.executable, "-m", "visionzoo", "features", str(folder), "--backbone", "ghostnet_050",
               "--img-size", "32", "--snippet-frames", "2", "--temporal-scale", "8", "--batch-size", "1",
               "--amp", "off", "--output", str(out)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "videos").glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.json")}
    assert 1 <= len(done_before) < 10, "the kill did not land in the middle of the run"

    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left
    rows = info_rows(out)
    assert sorted(rows) == [f"clip{i}" for i in range(10)]
    for name in rows:
        assert read_feature_csv(out / "csv_mean_8" / f"{name}.csv", 8, 1280).shape == (8, 1280)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.json") if p.name in done_before} == (
        done_before  # finished videos were not extracted again
    )
