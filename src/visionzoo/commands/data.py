"""`visionzoo data make-*`: write the built-in datasets (or bigger ones) in the formats the recipes read."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionzoo.commands import CommandParser


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="make datasets in the formats the recipes read")
    data = p.add_subparsers(dest="data_command", required=True, parser_class=CommandParser)
    d = data.add_parser("make-digits", help="scikit-learn digits in the CIFAR-10 python format")
    d.add_argument("out", type=Path)
    d.set_defaults(run=run_make_digits)
    d = data.add_parser("make-anet-demo", help="synthetic ActivityNet features in the BSN/BMN layout")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int, default=600)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(run=run_make_anet_demo)
    d = data.add_parser("make-thumos-demo", help="synthetic THUMOS14-layout long videos (snippet .npy, class files)")
    d.add_argument("out", type=Path)
    d.add_argument("--videos", type=int, default=60)
    d.add_argument("--feat-dim", type=int, default=2048)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(run=run_make_thumos_demo)
    d = data.add_parser("make-imagefolder", help="generated JPEGs in the ImageNet train/val folder layout")
    d.add_argument("out", type=Path)
    d.add_argument("--classes", type=int, default=10)
    d.add_argument("--per-class", type=int, default=50)
    d.add_argument("--size", type=int, default=96)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(run=run_make_imagefolder)


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
