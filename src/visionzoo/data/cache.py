"""Where generated data and parsed caches live: $VISIONZOO_CACHE, else ~/.cache/visionzoo."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("VISIONZOO_CACHE") or Path.home() / ".cache" / "visionzoo")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
