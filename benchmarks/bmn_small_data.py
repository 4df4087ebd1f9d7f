"""BMN on small own-video datasets: which regularisation pays on held-out videos (the `bmn_own` defaults).

Usage: python benchmarks/bmn_small_data.py [--work DIR] [--quick]

Own data is tens to hundreds of annotated videos, not ActivityNet's 10,000. This script makes such data the way a
user would - generated videos (`make_video_demo`: several actions per video in half of them), features through
`visionzoo features` (random-weight resnet50 at 48 px, 8-frame snippets, T=32), annotations through
`data anet-annotations` - and trains `bmn_anet` with one change at a time on 50 and 200 training videos, every
run evaluated on the same 100 held-out videos. T=32 (not 100) keeps each run near a minute on one CPU thread.
Reported: the last epoch's AR@100 and AUC (no selection on the held-out set), the best epoch's AUC and the
epoch of the lowest held-out loss. Everything is kept in --work, so a rerun only does what is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from anywhere
from benchmarks.report import markdown_table, write_section  # noqa: E402

T, FEAT_DIM = 32, 2048
EXTRACT = {"backbone": "resnet50", "img_size": 48, "snippet_frames": 8}
# name -> flags added to `visionzoo train bmn_anet` (the reference recipe: Adam, L2 1e-4, 9 epochs, x0.1 after 7)
CONFIGS = {
    "bmn_anet (reference)": [],
    "feature dropout 0.2": ["--feature-dropout", "0.2"],
    "feature dropout 0.5": ["--feature-dropout", "0.5"],
    "temporal jitter 0.2": ["--temporal-jitter", "0.2"],
    "temporal jitter 0.5": ["--temporal-jitter", "0.5"],
    "weight decay 1e-3 (Adam L2)": ["--weight-decay", "1e-3"],
    "AdamW, weight decay 0.05": ["--optimizer", "adamw", "--weight-decay", "0.05"],
    "5 epochs (x0.1 after 4)": ["--epochs", "5", "--decay-milestones", "4"],
    "dropout 0.2 + jitter 0.2": ["--feature-dropout", "0.2", "--temporal-jitter", "0.2"],
}
KEYS = ("AR@100", "AUC")


def make_data(work: Path, videos: int, held_out: int, seconds: tuple[float, float]) -> Path:
    """Videos, their features and annotations in --work (each step skipped once done)."""
    from visionzoo.data.builtin.video_demo import make_video_demo
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.data.own_annotations import convert_annotations
    from visionzoo.export.snippet_features import SnippetFeaturizer, extract_features, list_videos

    demo = work / "videos"
    if not (demo / "annotations.csv").is_file():
        make_video_demo(demo, videos=videos, seed=0, seconds=seconds)
    features = work / "features"
    if not (features / "anet_anno_action.json").is_file():
        featurizer = SnippetFeaturizer(EXTRACT["backbone"], None, EXTRACT["img_size"], amp="off")
        folder = FeatureFolder(features, featurizer.spec(EXTRACT["snippet_frames"], T))
        extract_features(list_videos([demo / "videos"]), folder, featurizer, strict=True)
        convert_annotations(demo / "annotations.csv", features, val_fraction=held_out / videos, seed=0)
    return features


def info_with_training(features: Path, size: int) -> str:
    """A video_info CSV keeping the first `size` training videos as training (the others out: 'testing')."""
    name = f"video_info_train{size}.csv"
    with open(features / "video_info_new.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [row["video"] for row in rows if row["subset"] == "training"][:size]
    with open(features / name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                row | ({"subset": "testing"} if row["subset"] == "training" and row["video"] not in kept else {})
            )
    return name


def train(work: Path, features: Path, info: str, label: str, flags: list[str], seed: int) -> list[dict]:
    """metrics.jsonl of one run (trained now unless its summary exists)."""
    run = work / "runs" / f"{info.removesuffix('.csv')}-{label.replace(' ', '_')}-seed{seed}"
    if not (run / "summary.json").is_file():
        command = [sys.executable, "-m", "visionzoo", "train", "bmn_anet", "--data", str(features), "--video-info",
                   info, "--feat-dim", str(FEAT_DIM), "--temporal-scale", str(T), "--feature-dir", f"csv_mean_{T}",
                   "--amp", "off", "--workers", "0", "--seed", str(seed), "--output", str(run), *flags]  # fmt: skip
        if run.exists():
            command += ["--resume", "auto"]
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def sliding_windows(features: Path) -> dict[str, float]:
    from visionzoo.data.activitynet import load_annotations, select_subset
    from visionzoo.tasks import anet_metrics, postprocess

    truth, found = {}, {}
    for video in select_subset(load_annotations(features), "validation"):
        duration = postprocess.reference_duration(
            video.duration_second, video.duration_frame, EXTRACT["snippet_frames"]
        )
        truth[video.name] = video.segments
        windows = postprocess.sliding_window_proposals(duration)
        found[video.name] = np.array([[*p["segment"], p["score"]] for p in windows], dtype=np.float64)
    return anet_metrics.evaluate_proposals(truth, found, 100)


def row(label: str, size: int, seed: int, history: list[dict]) -> dict[str, object]:
    last, best = history[-1], max(history, key=lambda r: r["AUC"])
    lowest_loss = min(history, key=lambda r: r["eval_loss"])
    return {
        "training videos": size,
        "change to bmn_anet": label,
        "seed": seed,
        "AR@100 (last epoch)": f"{last['AR@100']:.2f}",
        "AUC (last epoch)": f"{last['AUC']:.2f}",
        "best AUC (epoch)": f"{best['AUC']:.2f} ({best['epoch']})",
        "lowest held-out loss at epoch": f"{lowest_loss['epoch']} of {len(history)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/visionzoo-bmn-small-data"))
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not a measurement")
    args = parser.parse_args()
    os.environ.setdefault("VISIONZOO_CACHE", str(args.work / "cache"))
    if args.quick:
        sizes, held_out, seconds, configs = [6], 4, (4.0, 8.0), dict(list(CONFIGS.items())[:2])
        configs = {k: [*v, "--epochs", "2", "--decay-milestones", "1", "-b", "2"] for k, v in configs.items()}
    else:
        sizes, held_out, seconds, configs = [50, 200], 100, (6.0, 30.0), CONFIGS
    features = make_data(args.work, held_out + max(sizes), held_out, seconds)
    rows = []
    for size in sizes:
        info = info_with_training(features, size)
        for label, flags in configs.items():
            seeds = (0, 1) if label == "bmn_anet (reference)" else (0,)  # the reference twice: the seed's noise
            for seed in seeds:
                rows.append(row(label, size, seed, train(args.work, features, info, label, flags, seed)))
                print(rows[-1], flush=True)
    baseline = sliding_windows(features)
    from visionzoo.engine.hardware import machine

    body = (
        f"{held_out} held-out videos ({baseline['instances']} actions) of `make_video_demo` "
        f"({seconds[0]:g}-{seconds[1]:g} s), features of a random-weight resnet50 (48 px, 8-frame snippets, T={T}, "
        f"{FEAT_DIM}-d), one CPU thread per run "
        f"({machine().describe()}). Sliding windows on the same videos: AR@100 {baseline['AR@100']:.2f}, AUC "
        f"{baseline['AUC']:.2f}. Accuracy only: the cores were shared, so no times are reported.\n\n"
        + markdown_table(rows)
    )
    if not args.quick:
        write_section("bmn_small_data", body)
    print(body)


if __name__ == "__main__":
    main()
