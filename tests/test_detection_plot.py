"""`eval-detection --plot`: the per-class AP bars are named, the most frequent classes first chosen, the rest one
bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from visionzoo.tasks.detection_metrics import plot_detection


def _evaluation(classes: int) -> dict[str, Any]:
    """Class c has c + 1 instances and AP (c % 7) * 10 % at every threshold."""
    thresholds = np.linspace(0.5, 0.95, 10)
    ap = np.tile((np.arange(classes) % 7) / 10.0, (len(thresholds), 1))
    return {
        "ap": ap,
        "mAP": ap.mean(axis=1),
        "average_mAP": ap.mean(),
        "tiou_thresholds": thresholds,
        "classes": [f"class {c} long name" for c in range(classes)],
        "instances": np.arange(classes) + 1,
    }


def _bars(evaluation: dict[str, Any], path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[float]]:
    """The right axis' tick labels and bar heights, read from the figure the function drew."""
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    plot_detection(evaluation, path, top=5)
    (figure,) = drawn
    axis = figure.axes[1]
    names = [label.get_text() for label in axis.get_xticklabels()]
    heights = [bar.get_height() for bar in axis.patches]
    monkeypatch.undo()
    plt.close(figure)
    return names, heights


def test_bars_name_the_most_frequent_classes_and_summarise_the_rest(tmp_path: Path, monkeypatch) -> None:
    names, heights = _bars(_evaluation(30), tmp_path / "many.png", monkeypatch)
    # the 5 with most instances are classes 29..25 (AP 10, 0, 60, 50, 40 %), best first, then the other 25
    assert names == [f"class {c} long name" for c in (27, 26, 25, 29, 28)] + ["others (25 classes)"]
    others = np.mean([(c % 7) * 10.0 for c in range(25)])
    assert heights == pytest.approx([60.0, 50.0, 40.0, 10.0, 0.0, others])
    assert (tmp_path / "many.png").read_bytes()[:4] == b"\x89PNG"


def test_few_classes_are_all_named(tmp_path: Path, monkeypatch) -> None:
    names, heights = _bars(_evaluation(3), tmp_path / "few.png", monkeypatch)
    assert names == ["class 2 long name", "class 1 long name", "class 0 long name"]
    assert heights == pytest.approx([20.0, 10.0, 0.0])
