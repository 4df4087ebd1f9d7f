"""`visionzoo predict`: top-k classes of images, or BMN proposals of feature CSVs, from a checkpoint or ONNX file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from visionzoo.engine.precision import AMP_CHOICES

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="top-k classes of images, or BMN proposals of feature CSVs, from a checkpoint or ONNX file"
    )
    p.add_argument("target", metavar="RECIPE", help="recipe or model name (with --onnx: checked against the file)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="images, feature CSVs or videos, or folders")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="PyTorch weights (.safetensors or .pt)")
    source.add_argument("--onnx", type=Path, help="an ONNX file written by visionzoo export")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        help="with --checkpoint: precision (default auto: what fits the CPU; for a video backbone, that of the "
        "checkpoint's training features)",
    )
    p.add_argument(
        "--compile", "--torchcompile", action="store_true", help="with --checkpoint: torch.compile the model"
    )
    p.add_argument("--output", type=Path, help="classes: FILE.csv or .json; BMN: the proposals JSON; videos: a DIR")
    p.add_argument("--duration-second", type=float, nargs="+", help="BMN: video duration(s), one or one per file")
    p.add_argument("--video-info", type=Path, help="BMN: video_info CSV or annotation JSON giving the durations")
    from visionzoo.export.video_predict import add_video_arguments

    add_video_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from visionzoo.data.files import expand_inputs
    from visionzoo.export import predict, video_predict

    card, runtime = predict.load_runtime(
        args.target, args.checkpoint, args.onnx, amp=args.amp or "auto", compile=args.compile
    )
    if video_predict.wants_videos(args, card):
        return video_predict.run(args, card, runtime)
    inputs = args.inputs
    if card.task == "windowed_proposals":  # long videos: snippet features of any length, the recipe's windows
        files = expand_inputs(inputs, lambda name: name.lower().endswith((".npy", ".csv")), "feature files")
        results = predict.predict_long_videos(card, runtime, files, args.video_info, args.batch_size)
        unit = None if args.video_info else "no --video-info (each video's fps): positions are in snippets"
        return _show_proposals(results, args.output, unit)
    if card.task == "proposals":
        files = expand_inputs(inputs, lambda name: name.lower().endswith(".csv"), "feature CSV files")
        durations, in_seconds = predict.video_durations(files, args.duration_second, args.video_info)
        results = predict.predict_proposals(card, runtime, files, durations, args.batch_size)
        unit = "no --duration-second or --video-info: segments are fractions of the feature span (0..1)"
        return _show_proposals(results, args.output, None if in_seconds else unit)
    from visionzoo.data.imagefolder import is_image_file

    files = expand_inputs(inputs, is_image_file, "image files")
    predictions = predict.predict_images(card, runtime, files, args.topk, args.batch_size)
    for p in predictions:
        print(p.file + ": " + ", ".join(f"{e['name']} {e['probability']:.3f}" for e in p.topk))
    if args.output is not None:
        print(predict.write_predictions(args.output, predictions))
    return 0


def _show_proposals(results: dict, output: Path | None, warning: str | None) -> int:
    """Each video's best three proposals on stdout, and the proposals JSON when asked."""
    from visionzoo.tasks.postprocess import write_proposals

    if warning is not None:
        logger.warning("%s", warning)
    for video, found in results.items():
        best = ", ".join(f"[{p['segment'][0]:.2f}, {p['segment'][1]:.2f}] {p['score']:.3f}" for p in found[:3])
        print(f"{video}: {len(found)} proposals; best {best}")
    if output is not None:
        print(write_proposals(output, results))
    return 0
