"""The viewer page in a real browser: Debian's Chromium driven by Playwright (no browser download), the page
opened from file:// over generated videos (H.264, which that Chromium plays, and an MPEG-4 Part 2 AVI, which no
Chromium plays, for the thumbnail fallback)."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from visionzoo.data.builtin.video_demo import make_video_demo
from visionzoo.data.video import thumbnails, write_video
from visionzoo.export.viewer import ViewerVideo, thumbnail_uri, write_viewer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
HOSTILE = '</script><b>"odd"</b> label'
WAIT_MS = 20_000  # the most a playback step may take on a loaded machine (a wait, not a measured time)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("no chromium executable on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two demo videos (in a folder with a space) and an unplayable AVI, and the page over them."""
    root = tmp_path_factory.mktemp("viewer")
    demo = make_video_demo(root / "demo videos", videos=2, seconds=(6.0, 8.0), size=(96, 72))
    truth: dict[str, list[dict[str, Any]]] = {}
    with open(demo / "annotations.csv") as handle:
        for row in csv.DictReader(handle):
            truth.setdefault(row["video"], []).append(
                {"segment": [float(row["start"]), float(row["end"])], "label": row["label"]}
            )
    avi = write_video(root / "old codec.avi", (np.full((48, 64, 3), 90 * (i % 3), np.uint8) for i in range(50)), 25.0,
                      "mpeg4")  # fmt: skip
    videos = []
    for name in sorted(truth):
        path = demo / "videos" / f"{name}.mp4"
        videos.append(_video(name, path, truth[name]))
    videos.append(_video("old codec", avi, None))
    page = write_viewer(root / "out" / "index.html", videos)
    return {"page": page, "videos": videos, "fps": _seconds_fps(videos[0].path)[1]}


def _seconds_fps(path: Path) -> tuple[float, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames / float(stream.average_rate), float(stream.average_rate)


def _video(name: str, path: Path, truth: list[dict[str, Any]] | None) -> ViewerVideo:
    """Detections around the truth (the best a short one, quick to play), a hostile label, a few proposals."""
    duration = _seconds_fps(path)[0]
    label = truth[0]["label"] if truth else "juggling"
    detections = [
        {"segment": [1.0, 1.6], "label": label, "score": 0.95},
        {"segment": [0.5, duration - 1.0], "label": HOSTILE, "score": 0.62},
        {"segment": [2.0, 4.0], "label": label, "score": 0.2},
    ]
    proposals = [{"segment": [i * 0.8, i * 0.8 + 2.5], "score": 0.9 - 0.1 * i} for i in range(6)]
    strip = [thumbnail_uri(image) for image in thumbnails(path, [duration * (i + 0.5) / 6 for i in range(6)], 48)]
    return ViewerVideo(name, path, duration, detections, proposals, truth, strip)


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    """The page from file://, recording console errors, uncaught exceptions and every request."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.errors, page.requests = [], []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(site["page"].as_uri())
    page.wait_for_function("document.getElementById('video-0').readyState >= 1", timeout=WAIT_MS)
    yield page
    page.close()


def test_click_plays_the_segment_from_its_start_to_its_end(page: Any, site: dict[str, Any]) -> None:
    frame = 1.0 / site["fps"]
    page.evaluate(
        "() => { const v = document.getElementById('video-0');"
        " v.addEventListener('seeked', () => { window.seekedAt = v.currentTime; }, {once: true}); }"
    )
    best = page.locator('#section-0 .detections .seg[data-rank="1"]')
    assert (best.get_attribute("data-start"), best.get_attribute("data-end")) == ("1.000", "1.600")
    best.click()
    page.wait_for_function("window.seekedAt !== undefined", timeout=WAIT_MS)
    assert abs(page.evaluate("window.seekedAt") - 1.0) <= frame
    # it plays, then stops at the segment's end
    page.wait_for_function(
        "() => { const v = document.getElementById('video-0'); return v.paused && v.currentTime > 1.3; }",
        timeout=WAIT_MS,
    )
    assert abs(page.evaluate("document.getElementById('video-0').currentTime") - 1.6) <= frame
    assert page.errors == []
    assert page.requests and all(url.startswith(("file://", "data:")) for url in page.requests)


def test_hover_shows_label_score_and_times(page: Any) -> None:
    page.locator('#section-1 .detections .seg[data-rank="2"]').hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert HOSTILE in tip.inner_text() and "score 0.620 (#2)" in tip.inner_text() and "0.50 - " in tip.inner_text()
    assert page.locator("script").count() == 1  # the hostile label did not open or close a script


def test_threshold_and_top_k_hide_segments(page: Any) -> None:
    scored = page.locator(".timeline .seg[data-score]")
    assert scored.count() == 3 * (3 + 6)
    page.eval_on_selector("#threshold", "el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }")
    visible = [float(s) for s in page.locator(".timeline .seg[data-score]:visible").evaluate_all(
        "els => els.map(e => e.dataset.score)")]  # fmt: skip
    assert visible and min(visible) >= 0.5 and len(visible) == 3 * (2 + 5)
    page.fill("#top-k", "1")
    ranks = page.locator(".timeline .seg[data-score]:visible").evaluate_all("els => els.map(e => e.dataset.rank)")
    assert ranks == ["1"] * 6  # one detection and one proposal per video
    assert page.locator("#shown").inner_text() == "6 of 27 scored segments shown"


def test_unplayable_codec_shows_the_thumbnails_and_a_note(page: Any) -> None:
    page.wait_for_selector("#section-2 .fallback", state="visible", timeout=WAIT_MS)
    assert not page.locator("#video-2").is_visible()
    assert "cannot play old codec.avi" in page.locator("#section-2 .note").inner_text()
    widths = page.locator("#section-2 .thumbs img").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert len(widths) == 6 and min(widths) > 0  # the data URIs decoded
    assert page.locator("#video-0").is_visible()  # the playable ones keep their player
    assert page.errors == []


def test_screenshot_is_not_blank(page: Any, tmp_path: Path) -> None:
    page.wait_for_function("document.getElementById('video-1').readyState >= 2", timeout=WAIT_MS)
    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 900 and pixels.shape[1] == 1200
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # text, lanes of class colours, video frames
    assert pixels.std() > 20


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index.html of a real `predict --classes` run on generated videos (models trained for two epochs)."""
    from visionzoo.cli import main

    def cli(*argv: object) -> None:
        assert main([str(a) for a in argv]) == 0

    root = tmp_path_factory.mktemp("predicted")
    demo = make_video_demo(root / "demo", videos=8, seconds=(4.0, 6.0), size=(64, 48))
    features, out = root / "features", root / "out"
    cli("features", demo / "videos", "--backbone", "tiny_test_net", "--img-size", 32, "--snippet-frames", 4,
        "--amp", "off", "--temporal-scale", 16, "--output", features)  # fmt: skip
    cli("data", "anet-annotations", demo / "annotations.csv", "--features", features)
    cli("train", "bmn_own", "--data", features, "--feat-dim", 16, "--temporal-scale", 16, "--feature-dir",
        "csv_mean_16", "--epochs", 2, "--workers", 0, "--output", root / "bmn")  # fmt: skip
    cli("train", "anet_video_classifier", "--data", features, "--epochs", 2, "--workers", 0, "--output", root / "cls")
    cli("predict", "bmn_own", "--checkpoint", root / "bmn" / "best.safetensors", demo / "videos" / "demo_000.mp4",
        demo / "videos" / "demo_001.mp4", "--classes", root / "cls" / "best.safetensors", "--ground-truth",
        demo / "annotations.csv", "--output", out)  # fmt: skip
    return out / "index.html"


def test_predicted_page_seeks_to_a_clicked_detection(browser: Any, predicted: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(predicted.as_uri())
    page.wait_for_function("document.getElementById('video-0').readyState >= 1", timeout=WAIT_MS)
    assert page.locator("#section-0 .truth .seg[data-label]").count() >= 1  # the ground truth, labelled
    page.evaluate(
        "() => { const v = document.getElementById('video-0');"
        " v.addEventListener('seeked', () => { window.seekedAt = v.currentTime; }, {once: true}); }"
    )
    best = page.locator('#section-0 .detections .seg[data-rank="1"]')
    start, label = float(best.get_attribute("data-start")), best.get_attribute("data-label")
    assert label and start >= 0
    best.click()
    page.wait_for_function("window.seekedAt !== undefined", timeout=WAIT_MS)
    fps = _seconds_fps(predicted.parent.parent / "demo" / "videos" / "demo_000.mp4")[1]
    assert abs(page.evaluate("window.seekedAt") - start) <= 1.0 / fps
    assert errors == []
    assert requests and all(url.startswith(("file://", "data:")) for url in requests)
    page.close()
