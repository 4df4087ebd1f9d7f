"""The detections viewer over generated videos, and the screenshot of it in docs/viewer.png.

Usage: python benchmarks/viewer_demo.py [OUT_DIR] [--screenshot docs/viewer.png]
Writes OUT_DIR/index.html (default: a temporary folder) over 3 `make-video-demo` videos. Its detections and
proposals are made here from the ground truth (boundaries moved, plus a false alarm of another class, seeded), not
by a model: the page, not a model's accuracy, is what the screenshot shows. The screenshot needs Playwright and the
system's Chromium (`apt-get install chromium`); it is taken after a click on the first video's best detection.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.data.builtin.video_demo import CLASSES, make_video_demo
from visionzoo.data.video import thumbnails
from visionzoo.export.viewer import ViewerVideo, thumbnail_uri, write_viewer

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def found_in(truth: list[dict[str, Any]], duration: float, rng: np.random.Generator) -> tuple[list, list]:
    """Detections near each true segment (and one false alarm) and proposals around them, as a model would."""
    detections, proposals = [], []
    for t in truth:
        start, end = t["segment"]
        for _ in range(3):
            shift = rng.normal(0.0, 0.15 * (end - start), 2)
            segment = [max(0.0, start + shift[0]), min(duration, end + shift[1])]
            proposals.append({"segment": segment, "score": float(rng.uniform(0.3, 0.95))})
        detections.append({"segment": proposals[-1]["segment"], "label": t["label"], "score": proposals[-1]["score"]})
    start = float(rng.uniform(0, duration * 0.7))
    other = next(c for c in CLASSES if c != truth[0]["label"])
    detections.append(
        {"segment": [start, start + duration * 0.2], "label": other, "score": float(rng.uniform(0.1, 0.4))}
    )
    return detections, proposals


def build(out: Path) -> Path:
    import av

    demo = make_video_demo(out / "videos", videos=3, seconds=(12.0, 20.0), size=(160, 120))
    truth: dict[str, list[dict[str, Any]]] = {}
    with open(demo / "annotations.csv") as handle:
        for row in csv.DictReader(handle):
            segment = [float(row["start"]), float(row["end"])]
            truth.setdefault(row["video"], []).append({"segment": segment, "label": row["label"]})
    rng = np.random.default_rng(0)
    videos = []
    for name in sorted(truth):
        path = demo / "videos" / f"{name}.mp4"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            duration = stream.frames / float(stream.average_rate)
        detections, proposals = found_in(truth[name], duration, rng)
        strip = [thumbnail_uri(i) for i in thumbnails(path, [duration * (k + 0.5) / 8 for k in range(8)], 60)]
        videos.append(ViewerVideo(name, path, duration, detections, proposals, truth[name], strip))
    return write_viewer(out / "index.html", videos)


def screenshot(page_path: Path, png: Path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(page_path.as_uri())
        page.wait_for_function("document.getElementById('video-0').readyState >= 2")
        page.locator('#section-0 .detections .seg[data-rank="1"]').click()
        page.wait_for_function("document.getElementById('video-0').paused")
        page.locator('#section-0 .detections .seg[data-rank="1"]').hover()
        page.screenshot(path=str(png))
        browser.close()
    with Image.open(png) as image:  # 256 colours: a few hundred KB at most, for the docs
        image.convert("RGB").quantize(256).save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="viewer_demo_"))
    page = build(out)
    print(page)
    if args.screenshot is not None:
        screenshot(page, args.screenshot)
        print(args.screenshot)


if __name__ == "__main__":
    main()
