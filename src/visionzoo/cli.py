"""The `visionzoo` command: one parser built from the command modules (`visionzoo.commands`), then dispatch.

A user's mistake (a `VisionZooError`) ends as one `visionzoo: error: ...` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from visionzoo.commands import MODULES, CommandParser
from visionzoo.errors import VisionZooError


def build_parser() -> CommandParser:
    from visionzoo import __version__

    parser = CommandParser(prog="visionzoo", description="A PyTorch model zoo: train, evaluate, benchmark and export.")
    parser.add_argument("--version", action="version", version=f"visionzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for name in MODULES:
        importlib.import_module(f"visionzoo.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from visionzoo.engine.progress import setup_logging

    setup_logging()
    args: argparse.Namespace = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except VisionZooError as err:
        print(f"visionzoo: error: {_own_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("visionzoo: interrupted", file=sys.stderr)
        return 130


def _own_line(err: VisionZooError) -> str:
    """The error's own line: one raised in a data loader worker arrives inside the text of its traceback."""
    text = str(err)
    if text.startswith(f"Caught {VisionZooError.__name__}"):
        return text.rsplit(f"{VisionZooError.__name__}: ", 1)[-1].strip()
    return text
