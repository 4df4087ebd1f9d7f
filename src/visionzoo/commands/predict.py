"""`visionzoo predict`: top-k classes of images or of videos (feature CSVs or video files), BMN proposals of feature
CSVs, or BMN proposals and labelled detections of videos, from a checkpoint or ONNX file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from visionzoo.recipes.base import Amp, Device, Fusion, InferenceRuntime, choices

if TYPE_CHECKING:  # the CLI imports this module to build its parser: heavy imports wait until used
    from visionzoo.export.model_card import ModelCard
    from visionzoo.export.runtime import Runtime
    from visionzoo.export.video_predict import Labeller

logger = logging.getLogger(__name__)

DEFAULT_VIDEO_OUTPUT = Path("output/predict")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="classes of images or videos, BMN proposals of feature CSVs, or detections of videos"
    )
    p.add_argument("target", metavar="RECIPE", help="recipe or model name (with --onnx: checked against the file)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="images, feature CSVs or videos, or folders")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="PyTorch weights (.safetensors or .pt)")
    source.add_argument("--onnx", type=Path, help="an ONNX file written by visionzoo export")
    p.add_argument(
        "--top-k", "--topk", dest="topk", type=int,
        help="classes shown per image or video (default 5); with --classes: classes per video paired with the "
        "proposals (default 2)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--amp",
        choices=choices(Amp),
        help="with --checkpoint: precision (default auto: what fits the CPU; for a video backbone, that of the "
        "checkpoint's training features)",
    )
    p.add_argument(
        "--compile", "--torchcompile", action="store_true", help="with --checkpoint: the same as --runtime compiled"
    )
    p.add_argument(
        "--runtime", default="auto", choices=choices(InferenceRuntime),
        help="what runs the model (and a video's backbone): auto (default: a rule per model kind and CPU, "
        "docs/speed.md), torch, compiled, onnxruntime, openvino; a checkpoint is converted once, cached by its "
        "weights' hash",
    )  # fmt: skip
    p.add_argument("--output", type=Path, help="classes: FILE.csv or .json; BMN: the proposals JSON; videos: a DIR")
    p.add_argument("--duration-second", type=float, nargs="+", help="BMN: video duration(s), one or one per file")
    p.add_argument("--video-info", type=Path, help="BMN: video_info CSV or annotation JSON giving the durations")
    add_video_arguments(p)
    p.set_defaults(run=run)


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """`predict` options for raw videos (with --backbone, or when the inputs are video files)."""
    from visionzoo.commands.features import add_extraction_arguments
    from visionzoo.export.video_predict import SHOWN

    group = p.add_argument_group("BMN on raw videos (default settings: those of the checkpoint's features)")
    add_extraction_arguments(group, defaults_from_checkpoint=True)
    group.add_argument("--ground-truth", type=Path, help="annotation CSV or JSON, drawn beside the proposals")
    group.add_argument("--show", type=int, default=SHOWN, help="segments per video in the SRT and the timeline")
    group.add_argument(
        "--classes", type=Path, metavar="CHECKPOINT",
        help="a video classifier trained on the same features (anet_video_classifier): labelled detections",
    )  # fmt: skip
    group.add_argument("--fusion", default="product", choices=choices(Fusion), help="proposal x class score")
    group.add_argument("--device", default="auto", choices=choices(Device), help="where the backbone runs")


def run(args: argparse.Namespace) -> int:
    from visionzoo.errors import VisionZooError
    from visionzoo.export import predict
    from visionzoo.files import expand_inputs

    if args.compile:
        if args.runtime not in ("auto", "compiled"):
            raise VisionZooError(f"--compile runs the model in PyTorch compiled, not --runtime {args.runtime}")
        args.runtime = "compiled"
    card, runtime = predict.load_runtime(
        args.target, args.checkpoint, args.onnx, amp=args.amp or "auto", runtime=args.runtime
    )
    if _wants_videos(args, card):
        return _predict_videos(args, card, runtime)
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

    if card.task == "video_classification":
        files = expand_inputs(inputs, lambda name: name.lower().endswith(".csv"), "feature CSV files")
        return _show_classes(predict.predict_video_classes(card, runtime, files, args.batch_size), args)
    files = expand_inputs(inputs, is_image_file, "image files")
    predictions = predict.predict_images(card, runtime, files, args.topk or 5, args.batch_size)
    for p in predictions:
        print(p.file + ": " + ", ".join(f"{e['name']} {e['probability']:.3f}" for e in p.topk))
    if args.output is not None:
        print(predict.write_predictions(args.output, predictions))
    return 0


def _wants_videos(args: argparse.Namespace, card: ModelCard) -> bool:
    from visionzoo.data.video import is_video_file

    wanted = args.backbone is not None or any(is_video_file(p.name) for p in args.inputs)
    return card.task in ("proposals", "video_classification") and wanted


def _predict_videos(args: argparse.Namespace, card: ModelCard, runtime: Runtime) -> int:
    """`visionzoo predict` on videos: one line per video, then the files written (all under --output DIR)."""
    from visionzoo.commands.features import extraction_settings
    from visionzoo.data.video_snippets import list_videos
    from visionzoo.errors import VisionZooError
    from visionzoo.export import video_predict

    defaults = video_predict.trained_features(card)
    if (args.backbone or defaults["backbone"]) is None:
        raise VisionZooError("predict on videos: give --backbone MODEL (the checkpoint does not record its features)")
    settings = extraction_settings(args, **(defaults | {"amp": args.amp or defaults["amp"] or "auto"}))
    output, videos, source = args.output or DEFAULT_VIDEO_OUTPUT, list_videos(args.inputs), args.checkpoint or args.onnx
    if card.task == "video_classification":
        args.output = output / "classification.json"
        return _show_classes(video_predict.video_classes(card, runtime, settings, videos, source), args)
    labeller = _labeller(args) if args.classes is not None else None
    results = video_predict.predict_videos(card, runtime, settings, videos, source, labeller)
    for r in results:
        found, what = (r.detections, "detections") if r.detections is not None else (r.proposals, "proposals")
        best = ", ".join(f"{_label(p)}[{p['segment'][0]:.2f}, {p['segment'][1]:.2f}] s {p['score']:.3f}"
                         for p in found[:3])  # fmt: skip
        print(f"{r.name}: {len(found)} {what}; best {best}")
    for line in video_predict.write_results_folder(output, results, args.show, args.ground_truth):
        print(line)
    shown = "detections" if labeller is not None else "proposals"
    print(f"{output}/<video>.srt, {output}/<video>.png: the top {args.show} {shown} of each video; open "
          f"{output / video_predict.VIEWER} in a browser")  # fmt: skip
    return 0


def _label(segment: dict) -> str:
    return f"{segment['label']} " if "label" in segment else ""


def _labeller(args: argparse.Namespace) -> Labeller:
    """The --classes checkpoint as a runtime, its recipe named by the run's config.yaml (or the card beside it)."""
    from visionzoo.errors import VisionZooError
    from visionzoo.export.model_card import card_path, read_card
    from visionzoo.export.predict import load_runtime
    from visionzoo.export.video_predict import Labeller
    from visionzoo.files import require_regular_file
    from visionzoo.recipes.overrides import read_yaml_mapping

    checkpoint = args.classes
    require_regular_file(checkpoint, "--classes checkpoint")
    config_file = checkpoint.parent / "config.yaml"
    if config_file.is_file():
        config = read_yaml_mapping(config_file, "run config")
        name = str(config.get("name") or config.get("model"))
    elif card_path(checkpoint).is_file():
        shipped = read_card(card_path(checkpoint))
        name = shipped.recipe or shipped.model
    else:
        raise VisionZooError(f"--classes {checkpoint}: no config.yaml or model card beside it (a run's checkpoint?)")
    card, runtime = load_runtime(name, checkpoint, None, amp=args.amp or "auto", runtime=args.runtime)
    return Labeller(card, runtime, checkpoint, args.topk or 2, args.fusion)


def _show_classes(results: dict, args: argparse.Namespace) -> int:
    """Each video's best classes on stdout, and the classification JSON when asked."""
    from visionzoo.tasks.postprocess import write_results

    for video, found in results.items():
        print(f"{video}: " + ", ".join(f"{e['label']} {e['score']:.3f}" for e in found[: args.topk or 5]))
    if args.output is not None:
        print(write_results(args.output, results))
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
