"""`visionzoo features VIDEO_OR_DIR... --backbone MODEL --output DIR`: raw videos -> BMN features.

The BSN layout (csv_mean_<T>, ActivityNet-style data) by default; `--layout snippets`: snippets/<video>.npy at the
snippet stride (THUMOS14-style data, what bmn_thumos14 reads). MODEL: a zoo image classifier (centre frames), a
clip model (`i3d_rgb`, `i3d_flow`, `r2plus1d_18`, `r2plus1d_34`), `i3d` (two-stream: `--pretrained RGB
--pretrained-flow FLOW`) or `videomae:DIR` (a transformers folder).

See `visionzoo.export.feature_extractor` for what a feature is and what the folder holds; docs/bmn.md for why.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionzoo.recipes.base import Amp, Device, InferenceRuntime, choices

if TYPE_CHECKING:  # the CLI imports this module to build its parser: heavy imports wait until used
    from visionzoo.export.feature_extractor import ExtractionSettings

logger = logging.getLogger(__name__)
FRAME_BATCH, CLIP_BATCH = 32, 4  # default items per backbone forward: a 16-frame clip is 16 frames' work


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("features", help="per-snippet features of raw videos from any backbone, for BMN")
    p.add_argument("inputs", nargs="*", type=Path, metavar="VIDEO_OR_DIR", help="video files, or folders of them")
    p.add_argument("--output", type=Path, required=True, help="feature folder (the layout train bmn_* reads)")
    add_extraction_arguments(p)
    p.add_argument("--layout", choices=("bsn", "snippets"), default="bsn",
                   help="bsn: csv_mean_<T>/ rescaled to T rows (ActivityNet-style, bmn_own); snippets: "
                   "snippets/<video>.npy, one row per snippet (THUMOS14-style, bmn_thumos14)")  # fmt: skip
    p.add_argument("--batch-size", type=int, help="frames (clip models: clips) per backbone forward (32; clips: 4)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: decode in this process)")
    p.add_argument("--decode-threads", type=int, default=0, help="FFmpeg threads per decoder (0: FFmpeg picks)")
    p.add_argument("--keep-snippets", action="store_true", help="also write snippets/<video>.npy, float32 [L, D]")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable video instead of skipping it")
    p.add_argument("--shard", metavar="K/N", help="extract shard K of N (default: torchrun's rank and world size)")
    p.add_argument("--merge", action="store_true", help="only assemble video_info_new.csv from finished videos")
    p.add_argument("--device", default="auto", choices=choices(Device))
    p.add_argument("--runtime", default="auto", choices=choices(InferenceRuntime),
                   help="what runs the backbone: auto (a rule per model kind and CPU, docs/speed.md), torch, "
                   "compiled, onnxruntime, openvino; a conversion is cached by the weights' hash")  # fmt: skip
    p.set_defaults(run=run)


def add_extraction_arguments(p: argparse.ArgumentParser, defaults_from_checkpoint: bool = False) -> None:
    """The options that decide what a feature is (shared with `predict` on videos, where the checkpoint's
    features.json gives the defaults)."""
    unset = "default: the checkpoint's features, else " if defaults_from_checkpoint else "default "
    p.add_argument("--backbone", help="a zoo classifier or clip model (visionzoo models), i3d (two-stream) or "
                   "videomae:DIR: its pooled pre-logit features per snippet")  # fmt: skip
    p.add_argument("--pretrained", type=Path, help="the backbone's weights, i3d: the RGB stream's (default: random, "
                   "drawn with --init-seed)")  # fmt: skip
    p.add_argument("--pretrained-flow", type=Path, help="i3d: the flow stream's weights (e.g. flow_imagenet.pt)")
    p.add_argument("--layer", choices=("pre_logits", "logits"), help=f"({unset}pre_logits)")
    p.add_argument("--img-size", type=int, help=f"({unset}the backbone's; clip models: the crop, resize scaled)")
    p.add_argument("--snippet-frames", type=int, help=f"frames per snippet at the video's rate ({unset}16; clip "
                   "models: the protocol's stride, at its fps)")  # fmt: skip
    scale = "default: the checkpoint's T" if defaults_from_checkpoint else "default 100"
    p.add_argument("--temporal-scale", type=int, help=f"T, rows per video after the rescale ({scale})")
    p.add_argument("--init-seed", type=int, help=f"seed of random backbone weights, without --pretrained ({unset}0)")
    if not defaults_from_checkpoint:  # predict has its own --amp, for the backbone and the BMN alike
        p.add_argument("--amp", choices=choices(Amp), default="auto", help="the backbone's precision (default auto)")


def run(args: argparse.Namespace) -> int:
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.data.video_snippets import list_videos
    from visionzoo.errors import VisionZooError
    from visionzoo.export.feature_extractor import extract_features, load_featurizer

    if args.merge:
        return _merge(args.output)
    if not args.inputs or args.backbone is None:
        raise VisionZooError("features: give video files or folders and --backbone MODEL (or --merge to assemble)")
    for name in ("snippet_frames", "temporal_scale", "batch_size", "img_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise VisionZooError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    settings = extraction_settings(args)
    shard = settings.shard
    videos = list_videos(args.inputs)
    featurizer = load_featurizer(settings)
    if args.pretrained is None and not args.backbone.startswith("videomae:"):
        logger.warning("no --pretrained: %s has random weights (seed %d)", args.backbone, settings.init_seed)
    spec = featurizer.spec()
    folder = FeatureFolder(args.output, spec)
    report = extract_features(videos, folder, featurizer)
    where = f" (shard {shard[0]}/{shard[1]}: {report.other_shards} videos are other shards')" if shard[1] > 1 else ""
    print(
        f"{len(videos) - report.other_shards} videos{where}: {len(report.extracted)} extracted, "
        f"{len(report.already_done)} already done, {len(report.failed)} skipped (unreadable)"
        + (f": {', '.join(report.failed)}" if report.failed else "")
    )
    if report.failed and not report.extracted and not report.already_done:
        raise VisionZooError(
            f"features: none of the {len(report.failed)} videos could be read (the warnings above say why); "
            "nothing was extracted"
        )
    if spec.layout == "snippets":
        print(f"{spec.feat_dim}-d {spec.backbone} features, one per {spec.snippet_frames} frames -> {folder.root}")
        logger.info("next: put annotations and video_info_new.csv's subsets beside them, then visionzoo train "
                    "bmn_thumos14 --data %s --feat-dim %d", shlex.quote(str(folder.root)), spec.feat_dim)  # fmt: skip
        return 0
    print(f"{spec.feat_dim}-d {spec.backbone} features, T={spec.temporal_scale} -> {folder.root}")
    T = spec.temporal_scale
    scale = "" if T == 100 else f" --temporal-scale {T} --feature-dir {folder.csv_dir.name}"
    logger.info(
        "next: visionzoo data anet-annotations ANNOTATIONS.csv --features %s, then visionzoo train bmn_own --data %s "
        "--feat-dim %d%s", shlex.quote(str(folder.root)), shlex.quote(str(folder.root)), spec.feat_dim, scale,
    )  # fmt: skip
    return 0


def extraction_settings(args: argparse.Namespace, **defaults: Any) -> ExtractionSettings:
    """The settings the options give; `defaults` (a checkpoint's features.json, for predict) fill the rest."""
    from visionzoo.data.video_snippets import parse_shard
    from visionzoo.engine.distributed import resolve_device
    from visionzoo.export.feature_extractor import ExtractionSettings, is_clip_backbone

    given = {
        "backbone": args.backbone,
        "pretrained": args.pretrained,
        "pretrained_flow": args.pretrained_flow,
        "layer": args.layer,
        "img_size": args.img_size,
        "snippet_frames": args.snippet_frames,
        "temporal_scale": args.temporal_scale,
        "init_seed": args.init_seed,
        "amp": args.amp,
    }
    fields = {key: value for key, value in defaults.items() if value is not None}
    fields |= {key: value for key, value in given.items() if value is not None}
    device = resolve_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    batch_size = args.batch_size or (CLIP_BATCH if is_clip_backbone(fields.get("backbone") or "") else FRAME_BATCH)
    running = {"batch_size": batch_size, "device": device}
    for name in ("workers", "decode_threads", "keep_snippets", "strict", "layout", "runtime"):
        if hasattr(args, name):
            running[name] = getattr(args, name)
    if hasattr(args, "shard"):
        running["shard"] = parse_shard(args.shard)
    return ExtractionSettings(**fields, **running)


def _merge(output: Path) -> int:
    from visionzoo.data import feature_folder as ff
    from visionzoo.errors import VisionZooError

    found = ff.read_features_json(output)
    if found is None:
        raise VisionZooError(f"--merge {output}: no {ff.FEATURES_JSON} there (not a feature folder)")
    folder = ff.FeatureFolder(output, ff.FeatureSpec.from_dict(found))
    removed = folder.remove_leftovers(all_owners=True)
    if removed:
        logger.info("removed %d temporary files of interrupted runs", removed)
    print(folder.merge())
    return 0
