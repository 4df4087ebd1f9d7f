"""Where generated data and parsed caches live: $VISIONZOO_CACHE, else ~/.cache/visionzoo."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from visionzoo.errors import VisionZooError


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("VISIONZOO_CACHE") or Path.home() / ".cache" / "visionzoo")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def building_dir(out: Path, complete_marker: str) -> Iterator[Path]:
    """A fresh folder to fill, renamed to `out` when the block succeeds; so `out` is complete or absent.

    If another process (another rank) finished `out` first, its copy - recognised by `complete_marker` inside
    it - is kept and ours discarded.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build = tmp / out.name
        build.mkdir()
        yield build
        try:
            build.rename(out)
        except OSError:
            if not (out / complete_marker).exists():
                raise VisionZooError(f"{out}: already exists and holds something else; choose a new path") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
