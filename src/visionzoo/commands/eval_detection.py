"""`visionzoo eval-detection`: detection mAP of an ActivityNet detection JSON, equal to the challenge toolkit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from visionzoo.tasks.detection_metrics import ACTIVITYNET_TIOU, THUMOS_TIOU

    p = subparsers.add_parser(
        "eval-detection", help="detection mAP of a detections JSON, as the ActivityNet toolkit computes it"
    )
    p.add_argument(
        "--ground-truth",
        type=Path,
        required=True,
        help="ActivityNet database JSON, BSN annotation dir, or a folder of THUMOS14 <Class>_val/_test.txt files",
    )
    p.add_argument("--detections", type=Path, required=True, help="detections JSON: {'results': {video: [...]}}")
    p.add_argument(
        "--tiou",
        default=ACTIVITYNET_TIOU,
        metavar="LO:HI:N",
        help=f"tIoU thresholds, np.linspace(LO, HI, N) (default {ACTIVITYNET_TIOU}; THUMOS14: {THUMOS_TIOU})",
    )
    p.add_argument("--subset", default="validation", help="ground-truth subset to score (default validation)")
    p.add_argument("--json", action="store_true", help="print one JSON object (values in percent)")
    p.add_argument("--per-class", type=Path, metavar="CSV", help="also write each class's AP to this CSV")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also plot mAP per tIoU and AP per class")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from visionzoo.tasks.detection_metrics import evaluate_detection_file

    metrics = evaluate_detection_file(
        args.ground_truth, args.detections, args.tiou, args.subset, per_class=args.per_class, plot=args.plot
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        print("\n".join(f"{key} : {value:.2f}" for key, value in metrics.items()))
    return 0
