"""What the terminal shows: the run's ETA, usage without a recipe, next steps with paths a shell can take."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest

from visionzoo.cli import main
from visionzoo.engine import progress
from visionzoo.recipes import list_recipes


def test_the_eta_covers_the_epochs_still_to_come(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    clock = iter([0.0, 0.0, 10.0, 10.0, 10.0])  # start, last print; then one step took 10 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.EpochProgress(4, "epoch 1/3", enabled=True, every_s=0.0, later_steps=8, done_before=1)
    with caplog.at_level(logging.INFO, logger="visionzoo"):
        bar.update(1)  # step 2 of 4 done at 10 s a step: 2 left here + 8 in later epochs = 100 s
    assert "step 2/4" in caplog.text and "eta 100s" in caplog.text


def test_train_help_without_a_recipe_lists_the_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: visionzoo train RECIPE") and all(r.name in out for r in list_recipes())


def test_make_video_demo_says_what_it_wrote_and_quotes_paths(tmp_path: Path, capsys) -> None:
    pytest.importorskip("av")
    out = tmp_path / "my videos"
    assert main(["data", "make-video-demo", str(out), "--videos", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"1 video in {out / 'videos'}, their action segments in {out / 'annotations.csv'}"
    words = shlex.split(lines[1].removeprefix("next: ").split(", then")[0])
    assert words[:3] == ["visionzoo", "features", str(out / "videos")] and (out / "videos").is_dir()
