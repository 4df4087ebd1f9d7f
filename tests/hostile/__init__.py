"""Hostile inputs, one generator each, so the set can keep growing.

A generator makes one bad input in a folder of its own and returns a `Hostile`: the CLI arguments and what the
CLI must do with them. Either it fails with ONE `visionzoo: error:` line containing `error` (exit status 2,
nothing already on disk changed; before it, nothing at all unless the error can only show once the run has
started), or, when `error` is None, it succeeds and `check` says what must hold (each image counted once, an
unreadable one skipped and counted, ...). tests/test_hostile.py runs them all
through `visionzoo.cli.main`, each under a deadline, so a hang is a failure and not a stuck suite.

Add a case: a function `(folder: Path) -> Hostile` decorated with `@hostile("kind-what")` in the module of
its kind (cifar, files, imagefolder, options, weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    """What a finished command left: its exit status, stdout, stderr and the case's folder."""

    code: int
    out: str
    err: str
    folder: Path


@dataclass
class Hostile:
    argv: list[str]
    error: str | None = None  # a fragment of the one error line; None: the command must succeed
    mid_run: bool = False  # the error shows only once training runs: log lines and a new run directory first
    check: Callable[[Outcome], None] | None = None  # more that must hold afterwards


Generator = Callable[[Path], Hostile]
CASES: dict[str, Generator] = {}


def hostile(name: str) -> Callable[[Generator], Generator]:
    def register(generator: Generator) -> Generator:
        if name in CASES:
            raise ValueError(f"hostile case {name!r} defined twice")
        CASES[name] = generator
        return generator

    return register


def train_cifar(data: Path, output: Path, *extra: str) -> list[str]:
    """A one-epoch CPU run of the tiny test model on a CIFAR-format folder."""
    return [
        "train", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--data", str(data), "--output", str(output),
        "--epochs", "1", "-b", "16", "-j", "0", "--amp", "off", *extra,
    ]  # fmt: skip


def train_folder(data: Path, output: Path, *extra: str) -> list[str]:
    """A one-epoch CPU run of the tiny test model on an ImageNet-layout folder of 3 classes."""
    return [
        "train", "ghostnet_imagenet", "--model", "tiny_test_net", "--num-classes", "3", "--img-size", "32",
        "--data", str(data), "--output", str(output), "--epochs", "1", "-b", "4", "-j", "0", "--amp", "off",
        "--warmup-epochs", "0", *extra,
    ]  # fmt: skip


from hostile import cifar, files, imagefolder, options, weights  # noqa: E402, F401  (they register their cases)
