"""`visionzoo report RUN_DIR... [--format md|csv|json] [--plot FILE.png]`: compare runs without TensorBoard.

The seed documents' results table (NAME, main metric, FPS, devices, epochs, AMP, torch version), one row per run
plus the machine it ran on, and a PNG of the training curves (loss, lr and the main metric per epoch, the runs
overlaid). Everything comes from the run directories' own files (config.yaml, summary.json, metrics.jsonl);
a run that cannot be reported is named with the reason and left out.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visionzoo.errors import VisionZooError
from visionzoo.files import is_regular_file

logger = logging.getLogger(__name__)

COLUMNS = ("NAME", "recipe", "metric", "best", "epoch", "FPS", "devices", "epochs", "AMP", "torch", "machine")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="results table and training curves of run directories")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (train --output)")
    p.add_argument("--format", choices=("md", "csv", "json"), default="md", help="table format (default md)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw loss, lr and main metric per epoch")
    p.set_defaults(run=run)


@dataclass
class Run:
    name: str  # the directory as given
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]  # metrics.jsonl, one record per epoch

    @property
    def metric(self) -> str:
        return str(self.summary.get("best", {}).get("metric") or self.config.get("main_metric", "?"))


def run(args: argparse.Namespace) -> int:
    runs, skipped = [], []
    for path in args.runs:
        try:
            runs.append(read_run(path))
        except VisionZooError as err:
            skipped.append({"run": str(path), "reason": str(err)})
            logger.warning("skipped %s: %s", path, err)
    if not runs:
        reasons = "; ".join(f"{item['run']}: {item['reason']}" for item in skipped)
        raise VisionZooError(f"no run to report ({reasons})")
    rows = [table_row(r) for r in runs]
    print(format_table(rows, args.format, skipped))
    if args.plot is not None:
        logger.info("training curves: %s", plot_curves(runs, args.plot))
    return 0


def read_run(path: Path) -> Run:
    """A finished run's files, or a VisionZooError saying why it cannot be reported."""
    from visionzoo.files import remove_stale_temporaries

    if not path.is_dir():
        raise VisionZooError("no such directory")
    remove_stale_temporaries(path)
    config = _read(path / "config.yaml", "no config.yaml: not a run directory", yaml.safe_load)
    unfinished = "no summary.json: the run has not finished (stopped, or still training)"
    summary = _read(path / "summary.json", unfinished, json.loads)
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise VisionZooError("config.yaml or summary.json does not hold a mapping")
    history = []
    if is_regular_file(path / "metrics.jsonl"):
        for number, line in enumerate((path / "metrics.jsonl").read_text().splitlines(), start=1):
            try:
                history.append(json.loads(line))
            except json.JSONDecodeError:
                raise VisionZooError(f"metrics.jsonl line {number} is not JSON") from None
    return Run(str(path), config, summary, history)


def _read(path: Path, missing: str, parse: Any) -> Any:
    if not is_regular_file(path):
        raise VisionZooError(missing)
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise VisionZooError(f"{path.name} cannot be read ({str(err).splitlines()[0]})") from None


def table_row(r: Run) -> dict[str, Any]:
    best = r.summary.get("best") or {}
    requested, resolved = r.config.get("amp", "?"), r.config.get("amp_resolved")
    return {
        "NAME": r.name,
        "recipe": r.config.get("name", "?"),
        "metric": r.metric,
        "best": best.get("value"),
        "epoch": best.get("epoch"),
        "FPS": r.summary.get("samples_per_sec"),
        "devices": r.summary.get("world_size", r.config.get("world_size")),
        "epochs": r.summary.get("epochs"),
        "AMP": requested if resolved is None else f"{requested} -> {resolved}",
        "torch": r.config.get("torch_version"),
        "machine": r.config.get("machine"),
    }


def format_table(rows: list[dict[str, Any]], fmt: str, skipped: list[dict[str, str]]) -> str:
    if fmt == "json":
        return json.dumps({"runs": rows, "skipped": skipped}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(":---:" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(key, row[key]) for key in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if key == "FPS" else f"{value:.4g}"
    return str(value).replace("|", "/")


def plot_curves(runs: list[Run], path: Path) -> Path:
    """Training loss, learning rate and the main metric per epoch, one line per run (evaluated epochs only for
    the metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visionzoo.files import save_figure

    panels = (("train_loss", "training loss"), ("lr", "learning rate (last step of the epoch)"), (None, "main metric"))
    figure, axes = plt.subplots(1, 3, figsize=(16, 5))
    for index, r in enumerate(runs):
        label = f"{r.name} ({r.config.get('name', '?')})"
        for axis, (key, _) in zip(axes, panels, strict=True):
            key = key or r.metric
            points = [(rec["epoch"], rec[key]) for rec in r.history if isinstance(rec.get(key), int | float)]
            if points:
                epochs, values = zip(*points, strict=True)
                axis.plot(epochs, values, color=f"C{index % 10}", marker="o", markersize=3, label=f"{label}: {key}")
    metrics = sorted({r.metric for r in runs})
    for axis, (_, title) in zip(axes, panels, strict=True):
        axis.set(title=title, xlabel="epoch")
        axis.grid(alpha=0.3)
    lrs = [value for line in axes[1].get_lines() for value in line.get_ydata()]
    if lrs and min(lrs) > 0:  # runs' rates differ by orders of magnitude
        axes[1].set_yscale("log")
    axes[2].set(title=f"main metric ({', '.join(metrics)}; higher is better)")
    axes[2].legend(fontsize=8, loc="best")
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)
    return path
