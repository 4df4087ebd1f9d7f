"""`visionzoo report RUN_DIR... [--format md|csv|json] [--plot FILE.png] [--html FILE]`: compare runs without
TensorBoard.

The seed documents' results table (NAME, main metric, FPS, devices, epochs, AMP, torch version), one row per run
plus the machine it ran on, and the training curves (loss, lr and each main metric per epoch on its own axis, the
runs overlaid, each with its colour, dash and marker) as a PNG or, with the table, as one web page. Everything
comes from the run directories' own files (config.yaml, summary.json, metrics.jsonl); a run that cannot be
reported is named with the reason and left out.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from visionzoo.engine.progress import read_metrics, read_summary
from visionzoo.errors import VisionZooError
from visionzoo.files import Schema, is_regular_file, read_yaml, validate

logger = logging.getLogger(__name__)

COLUMNS = ("NAME", "recipe", "metric", "best", "epoch", "FPS", "devices", "epochs", "AMP", "torch", "machine")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="results table and training curves of run directories")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (train --output)")
    p.add_argument("--format", choices=("md", "csv", "json"), default="md", help="table format (default md)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw loss, lr and main metric per epoch")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the table and the curves as one web page")
    p.set_defaults(run=run)


class RunConfig(Schema):
    """The keys of a run's config.yaml the table shows (the recipe's own check is `recipes.overrides`)."""

    name: str | None = None
    main_metric: str | None = None
    amp: str | None = None
    amp_resolved: str | None = None
    torch_version: str | None = None
    machine: str | None = None
    world_size: Annotated[int, Field(ge=1)] | None = None


@dataclass
class Run:
    name: str  # the directory as given
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]  # metrics.jsonl, one record per epoch

    @property
    def metric(self) -> str:
        return str(self.summary["best"]["metric"] or self.config.get("main_metric") or "?")


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
    if args.html is not None:
        logger.info("report page: %s", write_html(runs, rows, skipped, args.html))
    return 0


def read_run(path: Path) -> Run:
    """A finished run's files, or a VisionZooError saying why it cannot be reported."""
    from visionzoo.files import remove_stale_temporaries

    if not path.is_dir():
        raise VisionZooError("no such directory")
    remove_stale_temporaries(path)
    if not is_regular_file(path / "config.yaml"):
        raise VisionZooError("no config.yaml: not a run directory")
    config = validate(RunConfig, read_yaml(path / "config.yaml", "run config"), str(path / "config.yaml"), "run config")
    if not is_regular_file(path / "summary.json"):
        raise VisionZooError("no summary.json: the run has not finished (stopped, or still training)")
    summary = read_summary(path / "summary.json")
    history = read_metrics(path / "metrics.jsonl") if is_regular_file(path / "metrics.jsonl") else []
    return Run(str(path), config.model_dump(), summary.model_dump(), history)


def table_row(r: Run) -> dict[str, Any]:
    requested, resolved = r.config["amp"] or "?", r.config["amp_resolved"]
    return {
        "NAME": r.name,
        "recipe": r.config["name"] or "?",
        "metric": r.metric,
        "best": r.summary["best"]["value"],
        "epoch": r.summary["best"]["epoch"],
        "FPS": r.summary["samples_per_sec"],
        "devices": r.summary["world_size"] or r.config["world_size"],
        "epochs": r.summary["epochs"],
        "AMP": requested if resolved is None else f"{requested} -> {resolved}",
        "torch": r.config["torch_version"],
        "machine": r.config["machine"],
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


LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _style(index: int) -> dict[str, Any]:
    """Each run its colour, dash and hollow marker, and runs drawn later thinner and smaller: two runs with
    the same curve (same seed) still both show, the later inside the earlier."""
    return {
        "color": f"C{index % 10}",
        "linestyle": LINE_STYLES[index % len(LINE_STYLES)],
        "marker": MARKERS[index % len(MARKERS)],
        "markerfacecolor": "none",
        "linewidth": max(3.0 - 0.7 * index, 1.0),
        "markersize": max(10.0 - 2.0 * index, 4.0),
        "markeredgewidth": 1.5,
    }


def _panels(runs: list[Run]) -> list[tuple[str, str]]:
    """(history key, title): loss, lr, then one axis per main metric (top-1 and AUC do not share a scale)."""
    metrics = sorted({r.metric for r in runs})
    return [
        ("train_loss", "training loss"),
        ("lr", "learning rate (last step of the epoch)"),
        *((m, f"{m} (higher is better)") for m in metrics),
    ]


def _figure(runs: list[Run], panels: list[tuple[str, str]]) -> Any:
    """The panels side by side (two rows past three), the runs' legend below them, outside every plot."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    columns = len(panels) if len(panels) <= 3 else math.ceil(len(panels) / 2)
    rows = math.ceil(len(panels) / columns)
    drawn = sorted({i for i, r in enumerate(runs) for key, _ in panels if key in ("train_loss", "lr", r.metric)})
    legend_columns = 1 if len(panels) == 1 else min(len(drawn), 2)  # one narrow axis: one name a line
    legend_inches = 0.3 + 0.25 * math.ceil(len(drawn) / legend_columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns, 3.6 * rows + legend_inches), squeeze=False, layout="constrained"
    )
    for axis, (key, title) in zip(axes.flat, panels, strict=False):
        for index, r in enumerate(runs):
            if key in ("train_loss", "lr") or r.metric == key:
                points = [(rec["epoch"], rec[key]) for rec in r.history if isinstance(rec.get(key), int | float)]
                if points:
                    axis.plot(*zip(*points, strict=True), **_style(index))
        axis.set(title=title, xlabel="epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        values = [value for line in axis.get_lines() for value in line.get_ydata()]
        if key == "lr" and values and min(values) > 0:  # runs' rates differ by orders of magnitude
            axis.set_yscale("log")
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    handles = [Line2D([], [], **_style(index)) for index in drawn]
    labels = [f"{runs[index].name} ({runs[index].config['name'] or '?'})" for index in drawn]
    figure.legend(handles, labels, loc="outside lower center", ncols=legend_columns, fontsize=9)
    return figure


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=100, format="png")
    plt.close(figure)
    return buffer.getvalue()


def plot_curves(runs: list[Run], path: Path) -> Path:
    """Training loss, learning rate and each main metric per epoch on its own axis, one line per run (evaluated
    epochs only for the metric)."""
    from visionzoo.files import write_bytes

    write_bytes(path, _png(_figure(runs, _panels(runs))))
    return path


def write_html(runs: list[Run], rows: list[dict[str, Any]], skipped: list[dict[str, str]], path: Path) -> Path:
    """One self-contained page: the results table, then a figure per metric (PNG data URIs, legend below)."""
    import base64
    from html import escape

    from visionzoo.files import write_text

    head = "".join(f"<th>{escape(key)}</th>" for key in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(key, row[key]))}</td>" for key in COLUMNS) + "</tr>" for row in rows
    )
    left_out = "".join(f"<li>{escape(item['run'])}: {escape(item['reason'])}</li>" for item in skipped)
    figures = []
    for key, title in _panels(runs):
        data = base64.b64encode(_png(_figure(runs, [(key, title)]))).decode("ascii")
        figures.append(
            f'<figure data-metric="{escape(key, quote=True)}"><img alt="{escape(title, quote=True)}" '
            f'src="data:image/png;base64,{data}"></figure>'
        )
    page = _HTML.format(
        head=head,
        body=body,
        skipped=f"<p>Left out:</p><ul>{left_out}</ul>" if skipped else "",
        figures="".join(figures),
    )
    write_text(path, page)
    return path


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>visionzoo report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px auto; max-width: 1200px; color: #1d232b; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #d8dce2; padding: 4px 8px; text-align: left; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 16px; }}
figure {{ margin: 0; }}
figure img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>visionzoo report</h1>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{skipped}
<h2>Curves</h2>
<div class="figures">{figures}</div>
</body>
</html>
"""
