"""`visionzoo eval-proposals`: AR@AN and AUC of a proposals JSON, as the ActivityNet toolkit computes them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval-proposals", help="AR@AN and AUC of a proposals JSON, as the ActivityNet toolkit")
    p.add_argument("--ground-truth", type=Path, required=True, help="ActivityNet database JSON or BSN annotation dir")
    p.add_argument("--proposals", type=Path, required=True, help="proposals JSON (ActivityNet format)")
    p.add_argument("--plot", type=Path, help="also write the AR-AN curve to this PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object (values in percent)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from visionzoo.tasks.anet_metrics import evaluate_proposals_file

    metrics = evaluate_proposals_file(args.ground_truth, args.proposals, plot=args.plot)
    keys = ("AR@1", "AR@5", "AR@10", "AR@100", "AUC")
    if args.json:
        print(json.dumps({k: metrics[k] for k in keys}))
    else:
        print("\n".join(f"{k} : {metrics[k]:.2f}" for k in keys))
    return 0
