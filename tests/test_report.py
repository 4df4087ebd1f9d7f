"""`visionzoo report`: the results table of runs of different recipes, their curves, and the runs it skips."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_tiny_cifar, preempted_after
from PIL import Image

from visionzoo.cli import main
from visionzoo.commands.report import Run, plot_curves
from visionzoo.data.builtin.anet_demo import make_anet_demo


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A classifier run, a BMN run (another main metric) and a run stopped by SIGTERM (no summary)."""
    root = tmp_path_factory.mktemp("report")
    cifar = make_tiny_cifar(root / "cifar")
    anet = make_anet_demo(root / "anet", videos=12, temporal_scale=16, feat_dim=8)
    common = ["-j", "0", "--amp", "off"]
    classifier = ["train", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--data", str(cifar), "-b", "16"]
    found = {"classifier": root / "classifier", "bmn": root / "bmn", "stopped": root / "stopped"}
    assert main([*classifier, "--epochs", "3", "--output", str(found["classifier"]), *common]) == 0
    bmn = ["train", "bmn_anet", "--data", str(anet), "--temporal-scale", "16", "--feat-dim", "8", "-b", "3"]
    assert main([*bmn, "--epochs", "2", "--output", str(found["bmn"]), *common]) == 0
    with preempted_after(2):
        assert main([*classifier, "--epochs", "3", "--output", str(found["stopped"]), *common]) == 3
    return found


def _report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_holds_each_finished_run_from_its_files(runs: dict[str, Path], capsys, tmp_path: Path) -> None:
    names = [str(runs[k]) for k in ("classifier", "bmn", "stopped")]
    code, out, err = _report(capsys, *names, "--format", "json", "--plot", str(tmp_path / "curves.png"))
    assert code == 0
    report = json.loads(out)
    assert [row["NAME"] for row in report["runs"]] == names[:2]
    for row, key in zip(report["runs"], ("classifier", "bmn"), strict=True):
        summary = json.loads((runs[key] / "summary.json").read_text())
        config = yaml.safe_load((runs[key] / "config.yaml").read_text())
        assert row["recipe"] == config["name"] and row["metric"] == config["main_metric"]
        assert (row["best"], row["epoch"]) == (summary["best"]["value"], summary["best"]["epoch"])
        assert (row["FPS"], row["devices"], row["epochs"]) == (summary["samples_per_sec"], 1, summary["epochs"])
        assert row["AMP"] == f"off -> {config['amp_resolved']}"
        assert (row["torch"], row["machine"]) == (config["torch_version"], config["machine"])
        assert row["machine"].startswith("CPU ")
    assert [row["metric"] for row in report["runs"]] == ["top1", "AUC"]
    (skipped,) = report["skipped"]
    assert skipped["run"] == names[2] and "has not finished" in skipped["reason"]
    assert f"skipped {names[2]}: no summary.json" in err

    with Image.open(tmp_path / "curves.png") as image:  # 2 x 2 axes: loss, lr, top1, AUC; the legend below
        assert image.format == "PNG" and image.size == (1040, 775)


def test_markdown_and_csv_tables(runs: dict[str, Path], capsys) -> None:
    code, out, _ = _report(capsys, str(runs["classifier"]), str(runs["bmn"]))
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 4 and lines[0].startswith("| NAME | recipe | metric | best |")
    assert "| cspdarknet53_cifar10 | top1 |" in lines[2] and "| bmn_anet | AUC |" in lines[3]
    code, out, _ = _report(capsys, str(runs["classifier"]), "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and row["recipe"] == "cspdarknet53_cifar10" and float(row["best"]) > 0


def test_nothing_to_report_is_one_error_line(runs: dict[str, Path], capsys, tmp_path: Path) -> None:
    code, out, err = _report(capsys, str(runs["stopped"]), str(tmp_path / "none"))
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1].startswith("visionzoo: error: no run to report (")
    assert "no such directory" in err


def test_html_page_holds_the_table_and_one_figure_per_metric(runs: dict[str, Path], capsys, tmp_path: Path) -> None:
    names = [str(runs[k]) for k in ("classifier", "bmn", "stopped")]
    code, _, err = _report(capsys, *names, "--html", str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert code == 0 and f"report page: {tmp_path / 'report.html'}" in err
    table = page.split("<table>")[1].split("</table>")[0]
    assert table.count("<tr>") == 3 and names[0] in table and names[1] in table and names[2] not in table
    assert f"<li>{names[2]}: no summary.json" in page  # the stopped run is named with why it is left out
    figures = re.findall(r'<figure data-metric="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert [metric for metric, _ in figures] == ["train_loss", "lr", "AUC", "top1"]
    for _, data in figures:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == "PNG" and image.width > 400
    assert not re.search(r"https?:", page)


def test_runs_with_the_same_curve_both_show(tmp_path: Path) -> None:
    """Two runs of one seed draw the same points: the second (orange) must not hide the first (blue)."""
    history = [{"epoch": e, "train_loss": 2.0 / e, "lr": 0.1, "top1": 10.0 * e} for e in range(1, 6)]
    same = [Run(name, {"name": "recipe"}, {"best": {"metric": "top1"}}, history) for name in ("seed0", "seed0-again")]
    with Image.open(plot_curves(same, tmp_path / "same.png")) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    plot = pixels[: int(pixels.shape[0] * 0.8)]  # above the legend, which shows both colours anyway
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):  # matplotlib's C0 and C1
        assert (np.abs(plot - colour).sum(axis=2) < 60).sum() > 200
