"""BMN trained on the built-in demo data against a sliding-window baseline on the same validation videos.

Usage: python benchmarks/bmn_demo_vs_baseline.py RUN_DIR
RUN_DIR is a finished `visionzoo train bmn_anet --data demo` run; its last epoch's AR@AN is read from
metrics.jsonl, and the baseline is scored by the same evaluation code on the same ground truth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

from visionzoo.data.activitynet import load_annotations, select_subset  # noqa: E402
from visionzoo.data.builtin.anet_demo import demo_data_dir  # noqa: E402
from visionzoo.tasks import anet_metrics, postprocess  # noqa: E402

KEYS = ("AR@1", "AR@5", "AR@10", "AR@100", "AUC")


def baseline_metrics(root: Path) -> dict[str, float]:
    videos = select_subset(load_annotations(root), "validation")
    truth, found = {}, {}
    for video in videos:
        name = postprocess.video_id(video.name)
        duration = postprocess.reference_duration(video.duration_second, video.duration_frame)
        truth[name] = video.segments
        proposals = postprocess.sliding_window_proposals(duration)
        found[name] = np.array([[*p["segment"], p["score"]] for p in proposals], dtype=np.float64)
    return anet_metrics.evaluate_proposals(truth, found, 100)


def main() -> None:
    run_dir = Path(sys.argv[1])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    config = (run_dir / "config.yaml").read_text()
    trained = records[-1]
    baseline = baseline_metrics(demo_data_dir())
    rows = [
        {"method": f"BMN, {len(records)} epochs (`{run_dir.name}`)", **{k: f"{trained[k]:.2f}" for k in KEYS}},
        {"method": "sliding windows (6 scales, half-window stride)", **{k: f"{baseline[k]:.2f}" for k in KEYS}},
    ]
    amp = next((line.split(":", 1)[1].strip() for line in config.splitlines() if line.startswith("amp:")), "?")
    body = (
        f"Validation subset of the demo data (`--data demo`: {baseline['videos']} videos, {baseline['instances']} "
        f"instances), percent. Training: amp {amp}, {trained['epoch_time_s']:.0f} s for the last epoch.\n\n"
        + markdown_table(rows)
    )
    write_section("bmn_demo_vs_baseline", body)
    print(body)


if __name__ == "__main__":
    main()
