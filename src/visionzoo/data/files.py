"""Reading a user's files without hanging: regular files only, folders walked without loops.

A FIFO, socket or device named like a data file would block the process that opens it (an open of a FIFO waits
for a writer for ever), so only regular files are ever opened or listed. Walks follow symbolic links, as
datasets are often assembled from links, but enter each directory once (by device and inode), so a link to a
parent folder neither repeats images nor loops.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from visionzoo.errors import VisionZooError


def is_regular_file(path: str | Path) -> bool:
    """A regular file, after following links (False for FIFOs, sockets, devices, folders, missing paths)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def require_regular_file(path: str | Path, what: str = "file") -> Path:
    """`path` when it is a regular file; else one error naming it and what it is instead."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VisionZooError(f"{path}: no such {what}") from None
    except OSError as err:
        raise VisionZooError(f"{path}: cannot read it ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise VisionZooError(f"{path}: {kind}, expected a {what}")
    return path


DirectoryKey = tuple[int, int]  # (device, inode)


def directory_key(path: str | Path) -> DirectoryKey:
    """What identifies a directory whatever the links that lead to it: (device, inode)."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def walk_files(folder: str | Path, accept: Callable[[str], bool], seen: set[DirectoryKey] | None = None) -> list[str]:
    """Regular files below `folder` whose name `accept` admits, as paths relative to it, in torchvision
    ImageFolder's order (a folder's files sorted, then its sub-folders', each sorted). Hidden entries are skipped.

    Links are followed, but a directory in `seen` (`directory_key`s, updated; `folder` itself is added) is not
    entered again, so a walk over several folders sharing `seen` lists each file once.
    """
    seen = set() if seen is None else seen
    seen.add(directory_key(folder))
    found: list[str] = []
    stack = [(os.fspath(folder), "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as listing:
            entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        # is_file() is true for regular files only (also behind links), from the listing itself where it can
        found += [os.path.join(rel, e.name) for e in entries if e.is_file() and accept(e.name)]
        below = []
        for entry in entries:
            if entry.is_dir():
                key = (entry.stat().st_dev, entry.stat().st_ino)
                if key not in seen:
                    seen.add(key)
                    below.append((entry.path, os.path.join(rel, entry.name)))
        stack += reversed(below)
    return found


def expand_inputs(inputs: list[Path], accept: Callable[[str], bool], what: str) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted) to the regular files `accept` admits."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(item / name for name in walk_files(item, accept))
            if not found:
                raise VisionZooError(f"{item}: no {what} in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise VisionZooError(f"{item}: no such file or folder")
    return files
