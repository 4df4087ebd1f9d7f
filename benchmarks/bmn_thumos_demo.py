"""BMN with sliding windows on the THUMOS14 demo data against sliding-window proposals with the same classes.

Usage: python benchmarks/bmn_thumos_demo.py [--feat-dim D] [--temporal-scale T] [--epochs N] [--lr LR]
Trains `bmn_thumos14` on `--data thumos-demo` (the recipe's settings unless given; the classes are
`--classes auto`'s), evaluates the best epoch on the demo's test videos at tIoU 0.3:0.7, and scores
sliding windows of fixed lengths paired with the same classes on the same videos.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

from visionzoo.cli import main as visionzoo  # noqa: E402
from visionzoo.commands.auto_classes import classes_file  # noqa: E402
from visionzoo.data.builtin import resolve_data  # noqa: E402
from visionzoo.data.thumos14 import load_long_videos  # noqa: E402
from visionzoo.engine.evaluate import evaluate_checkpoint  # noqa: E402
from visionzoo.engine.hardware import machine  # noqa: E402
from visionzoo.recipes import get_recipe  # noqa: E402
from visionzoo.tasks import detection, detection_metrics  # noqa: E402

WINDOWS = ((1, 2, 4, 8, 16), (2, 4, 8), (4,))  # seconds; the demo's instances last 1-12 s


def main() -> None:
    recipe = get_recipe("bmn_thumos14")
    parser = argparse.ArgumentParser()
    for name in ("feat_dim", "temporal_scale", "epochs"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(recipe, name))
    parser.add_argument("--lr", type=float, default=recipe.lr)
    args = parser.parse_args()
    settings = ["--feat-dim", str(args.feat_dim), "--temporal-scale", str(args.temporal_scale)]
    run_dir = Path(tempfile.mkdtemp(prefix="bmn_thumos_demo."))
    argv = ["train", "bmn_thumos14", "--data", "thumos-demo", *settings, "--epochs", str(args.epochs)]
    assert visionzoo([*argv, "--lr", str(args.lr), "--output", str(run_dir)]) == 0

    recipe = recipe.replace(data="thumos-demo", feat_dim=args.feat_dim, temporal_scale=args.temporal_scale)
    classes_path = classes_file(recipe)  # trained by the run above, reused here
    metrics = evaluate_checkpoint(recipe.replace(classes=str(classes_path)), run_dir / "best.safetensors", run_dir)
    videos = load_long_videos(resolve_data("thumos-demo", "thumos14", feat_dim=args.feat_dim), "test", args.feat_dim)
    truth = detection_metrics.truth_of({v.name: (v.segments, v.labels) for v in videos})
    durations = {v.name: v.duration_second for v in videos}
    keys = [detection_metrics.metric_name(t) for t in detection_metrics.parse_tiou(recipe.detection_tiou)]
    rows = [{"proposals": f"BMN, windows of {args.temporal_scale} snippets", **{k: metrics[k] for k in keys}}]
    rows[0]["average_mAP"] = metrics["average_mAP"]
    for seconds in WINDOWS:
        found = detection.baseline_detections(durations, detection.load_classes(classes_path), seconds)
        table = detection_metrics.detection_table(found, "baseline")
        evaluation = detection_metrics.evaluate_detections(
            truth, table, detection_metrics.parse_tiou(recipe.detection_tiou)
        )
        rows.append(
            {
                "proposals": f"sliding windows of {', '.join(map(str, seconds))} s",
                **detection_metrics.summary(evaluation),
            }
        )
    rows = [{key: f"{value:.2f}" if isinstance(value, float) else value for key, value in row.items()} for row in rows]
    body = (
        f"`--data thumos-demo` ({len(videos)} test videos, {sum(len(v.segments) for v in videos)} instances), percent; "
        f"BMN trained {args.epochs} epochs at lr {args.lr}, feat_dim {args.feat_dim}; every row pairs its proposals "
        f"with the same built-in classes (top 2, product). Machine: {machine().describe()}.\n\n" + markdown_table(rows)
    )
    write_section("bmn_thumos_demo", body)
    print(body)


if __name__ == "__main__":
    main()
