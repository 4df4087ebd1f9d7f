"""`visionzoo detect`: proposals x the top-k classes of a video-level classification -> a detections JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionzoo.recipes.base import Fusion, choices


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect", help="detections from proposals and video-level classes (ActivityNet JSON files)"
    )
    p.add_argument("--proposals", type=Path, required=True, help="proposals JSON (ActivityNet format)")
    p.add_argument("--classes", type=Path, required=True, help="classification JSON: {'results': {video: [...]}}")
    p.add_argument("--output", type=Path, required=True, help="the detections JSON to write")
    p.add_argument("--top-k", type=int, default=2, help="classes per video (default 2, as OpenTAD and ActionFormer)")
    p.add_argument(
        "--fusion",
        choices=choices(Fusion),
        default="product",
        help="score = proposal x class (OpenTAD's BMN) or sqrt of it (ActionFormer); default product",
    )
    p.add_argument("--max-per-video", type=int, default=100, help="detections kept per video, best first")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from visionzoo.tasks.detection import detect_file

    path, videos, count = detect_file(
        args.proposals, args.classes, args.output, args.top_k, args.fusion, args.max_per_video
    )
    print(f"{path}: {count} detections of {videos} videos")
    return 0
