"""Detection mAP on the ActivityNet demo data: BMN's proposals (or sliding windows) x the built-in classifier's
classes (or random ones), scored by `visionzoo eval-detection`'s code at tIoU 0.5:0.95.

Usage: python benchmarks/bmn_demo_detection.py [RUN_DIR] [--epochs N]
RUN_DIR is a finished `visionzoo train bmn_anet --data demo` run (its best.safetensors); without it BMN is
trained here first (the recipe's 9 epochs unless --epochs). The classifier is `--classes auto`'s: trained
once on the demo data in the cache, or reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

from visionzoo.cli import main as visionzoo  # noqa: E402
from visionzoo.commands.auto_classes import classes_file  # noqa: E402
from visionzoo.data.activitynet import load_annotations, select_subset  # noqa: E402
from visionzoo.data.builtin.anet_demo import demo_data_dir  # noqa: E402
from visionzoo.engine.evaluate import evaluate_checkpoint  # noqa: E402
from visionzoo.engine.hardware import machine  # noqa: E402
from visionzoo.recipes import get_recipe  # noqa: E402
from visionzoo.tasks import detection, detection_metrics, postprocess  # noqa: E402

KEYS = ("mAP@0.50", "mAP@0.75", "mAP@0.95", "average_mAP")


def score(detections: dict, truth: dict) -> dict[str, float]:
    table = detection_metrics.detection_table(detections, "benchmark")
    evaluation = detection_metrics.evaluate_detections(truth, table, detection_metrics.parse_tiou("0.5:0.95:10"))
    return detection_metrics.summary(evaluation)


def random_classes(classes: detection.Classes, seed: int = 0) -> detection.Classes:
    """The same label set per video in a random order with random scores: what knowing no class gives."""
    rng = np.random.default_rng(seed)
    labels = sorted({label for found in classes.values() for label, _ in found})
    return {
        name: sorted(((str(label), float(rng.random())) for label in labels), key=lambda e: -e[1]) for name in classes
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", nargs="?", type=Path)
    parser.add_argument("--epochs", type=int, default=get_recipe("bmn_anet").epochs)
    args = parser.parse_args()
    run_dir, trained = args.run_dir, f"`{args.run_dir}`"
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="bmn_demo_detection."))
        argv = ["train", "bmn_anet", "--data", "demo", "--epochs", str(args.epochs), "--output", str(run_dir)]
        assert visionzoo(argv) == 0
        trained = f"trained here for {args.epochs} epochs"
    recipe = get_recipe("bmn_anet").replace(data="demo")
    classes_path = classes_file(recipe)
    metrics = evaluate_checkpoint(recipe.replace(classes=str(classes_path)), run_dir / "best.safetensors", run_dir)
    classifier = json.loads((classes_path.parent / "metrics.jsonl").read_text().splitlines()[-1])

    videos = select_subset(load_annotations(demo_data_dir()), "validation")
    truth = detection_metrics.truth_of({postprocess.video_id(v.name): (v.segments, v.labels) for v in videos})
    durations = {
        postprocess.video_id(v.name): postprocess.reference_duration(v.duration_second, v.duration_frame)
        for v in videos
    }
    proposals = json.loads(Path(metrics["proposals_file"]).read_text())["results"]
    built_in = detection.load_classes(classes_path)
    rows = [
        ("BMN", "built-in classifier", {key: metrics[key] for key in KEYS}),
        ("BMN", "random classes", score(detection.fuse(proposals, random_classes(built_in), 2, "product", 100), truth)),
        (
            "sliding windows",
            "built-in classifier",
            score(detection.baseline_detections(durations, built_in, max_per_video=100), truth),
        ),
    ]
    table = [{"proposals": p, "classes (top 2, product)": c, **{k: f"{v[k]:.2f}" for k in KEYS}} for p, c, v in rows]
    body = (
        f"Validation subset of `--data demo` ({len(videos)} videos), percent, tIoU 0.5:0.95. BMN: {trained} "
        f"(AR@100 {metrics['AR@100']:.2f}, AUC {metrics['AUC']:.2f}). Built-in classifier (`--classes auto`, "
        f"anet_video_classifier): top-1 {classifier['top1']:.2f}, top-5 {classifier['top5']:.2f}, "
        f"mAP {classifier['mAP']:.2f}. Machine: {machine().describe()}.\n\n" + markdown_table(table)
    )
    write_section("bmn_demo_detection", body)
    print(body)


if __name__ == "__main__":
    main()
