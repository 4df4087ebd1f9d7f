"""`visionzoo data make-*`: write the built-in datasets (or bigger ones) in the formats the recipes read;
`visionzoo data anet-annotations`: your own annotations into the BMN files of a feature folder."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from visionzoo.commands import CommandParser, int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="make datasets in the formats the recipes read")
    data = p.add_subparsers(dest="data_command", required=True, parser_class=CommandParser)
    d = data.add_parser("make-digits", help="scikit-learn digits in the CIFAR-10 python format")
    d.add_argument("out", type=Path)
    d.set_defaults(run=run_make_digits)
    d = data.add_parser("make-anet-demo", help="synthetic ActivityNet features in the BSN/BMN layout")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int_at_least(1, 100_000), default=600)
    d.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0)
    d.set_defaults(run=run_make_anet_demo)
    d = data.add_parser("make-thumos-demo", help="synthetic THUMOS14-layout long videos (snippet .npy, class files)")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int_at_least(1, 100_000), default=60)
    d.add_argument("--feat-dim", type=int_at_least(1, 65_536), default=2048)
    d.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0)
    d.set_defaults(run=run_make_thumos_demo)
    d = data.add_parser("make-imagefolder", help="generated JPEGs in the ImageNet train/val folder layout")
    d.add_argument("out", type=Path)
    d.add_argument("--classes", type=int_at_least(1, 1000), default=10)
    d.add_argument("--per-class", type=int_at_least(1, 100_000), default=50)
    d.add_argument("--size", type=int_at_least(8, 4096), default=96)
    d.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0)
    d.set_defaults(run=run_make_imagefolder)
    d = data.add_parser("make-video-demo", help="synthetic videos with known action segments and their CSV")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int_at_least(1, 100_000), default=40)
    d.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0)
    d.set_defaults(run=run_make_video_demo)
    d = data.add_parser(
        "anet-annotations", help="your annotations (CSV or ActivityNet JSON) -> the BMN files of a feature folder"
    )
    d.add_argument("annotations", type=Path, help="CSV video,start,end,label[,subset] (seconds) or ActivityNet JSON")
    d.add_argument("--features", type=Path, required=True, help="the folder visionzoo features wrote")
    d.add_argument("--val-fraction", type=float, default=0.25, help="validation share of videos without a subset")
    d.add_argument("--seed", type=int_at_least(0, 2**32 - 1), default=0, help="seed of the training/validation split")
    d.add_argument("--strict", action="store_true", help="refuse rows of videos without features (default: warn)")
    d.set_defaults(run=run_anet_annotations)


def run_make_digits(args: argparse.Namespace) -> int:
    from visionzoo.data.builtin.digits import make_digits

    print(make_digits(args.out))
    return 0


def run_make_anet_demo(args: argparse.Namespace) -> int:
    from visionzoo.data.builtin.anet_demo import make_anet_demo

    print(make_anet_demo(args.out, videos=args.videos, seed=args.seed))
    return 0


def run_make_thumos_demo(args: argparse.Namespace) -> int:
    from visionzoo.data.builtin.thumos_demo import make_thumos_demo

    print(make_thumos_demo(args.out, videos=args.videos, seed=args.seed, feat_dim=args.feat_dim))
    return 0


def run_make_imagefolder(args: argparse.Namespace) -> int:
    from visionzoo.data.builtin.imagefolder_demo import make_imagefolder

    print(make_imagefolder(args.out, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed))
    return 0


def run_make_video_demo(args: argparse.Namespace) -> int:
    """The videos, then what was written and the next command (paths quoted for the shell)."""
    from visionzoo.data.builtin.video_demo import ANNOTATIONS, VIDEOS_DIR, make_video_demo

    out = make_video_demo(args.out, videos=args.videos, seed=args.seed)
    videos, features = out / VIDEOS_DIR, out / "features"
    plural = "s" if args.videos != 1 else ""
    print(f"{args.videos} video{plural} in {videos}, their action segments in {out / ANNOTATIONS}")
    print(
        f"next: visionzoo features {shlex.quote(str(videos))} --backbone resnet50 --output {shlex.quote(str(features))}"
        f", then visionzoo data anet-annotations {shlex.quote(str(out / ANNOTATIONS))} --features "
        f"{shlex.quote(str(features))}"
    )
    return 0


def run_anet_annotations(args: argparse.Namespace) -> int:
    from visionzoo.data.own_annotations import convert_annotations

    counts = convert_annotations(args.annotations, args.features, args.val_fraction, args.seed, args.strict)
    print(f"{args.features}: " + ", ".join(f"{count} {subset}" for subset, count in sorted(counts.items())))
    print(f"next: visionzoo train bmn_own --data {shlex.quote(str(args.features))}")
    return 0
