"""The CLI's commands: each module registers its subcommands (parser and the function that runs them).

`visionzoo.cli` builds one parser from these modules, in this order (the order of `visionzoo --help`).
"""

from __future__ import annotations

import argparse

MODULES = ("listing", "recipe_commands", "export", "predict", "eval_proposals", "demo", "data", "features")


class CommandParser(argparse.ArgumentParser):
    """Bad usage ends with one line naming the option, not a usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
