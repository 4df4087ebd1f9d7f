"""The CLI's commands: each module registers its subcommands (parser and the function that runs them).

`visionzoo.cli` builds one parser from these modules, in this order (the order of `visionzoo --help`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

MODULES = (
    "listing",
    "recipe_commands",
    "report",
    "export",
    "predict",
    "features",
    "eval_proposals",
    "eval_detection",
    "detect",
    "demo",
    "data",
)


class CommandParser(argparse.ArgumentParser):
    """Bad usage ends with one line naming the option, not a usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum` (counts, sizes) and at most `maximum` (an option that
    sizes a loop), else the usual one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse
