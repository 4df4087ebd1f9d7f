"""ImageNet-style folders with loops, pipes, unreadable files and images too large to decode."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

from hostile import Hostile, Outcome, hostile, train_folder
from visionzoo.data.builtin.imagefolder_demo import make_imagefolder

TRAIN_IMAGES = 12  # 3 classes x 4


def _folder(folder: Path) -> tuple[Path, Path]:
    """(dataset root, the first class folder of train)."""
    root = make_imagefolder(folder / "images", classes=3, per_class=4, size=40, val_per_class=2)
    return root, sorted((root / "train").iterdir())[0]


def _trained_on(count: int):
    def check(outcome: Outcome) -> None:
        assert f": {count} train / 6 val samples" in outcome.err, outcome.err[-2000:]

    return check


@hostile("imagefolder-symlink-loop")
def symlink_loop(folder: Path) -> Hostile:
    root, first = _folder(folder)
    os.symlink(".", first / "loop")
    return Hostile(train_folder(root, folder / "run"), check=_trained_on(TRAIN_IMAGES))


@hostile("imagefolder-two-symlinks-up")
def two_symlinks_up(folder: Path) -> Hostile:
    root, first = _folder(folder)
    os.symlink("..", first / "loopA")
    os.symlink("..", first / "loopB")
    return Hostile(train_folder(root, folder / "run"), check=_trained_on(TRAIN_IMAGES))


@hostile("imagefolder-linked-class-folder")
def linked_class_folder(folder: Path) -> Hostile:
    """A class folder that is a link to a folder elsewhere is followed (a common way to assemble datasets)."""
    root, first = _folder(folder)
    elsewhere = folder / "elsewhere"
    first.rename(elsewhere)
    os.symlink(elsewhere, first)
    return Hostile(train_folder(root, folder / "run"), check=_trained_on(TRAIN_IMAGES))


@hostile("imagefolder-fifo-named-like-an-image")
def fifo_named_like_an_image(folder: Path) -> Hostile:
    root, first = _folder(folder)
    os.mkfifo(first / "pipe.JPEG")
    return Hostile(train_folder(root, folder / "run"), check=_trained_on(TRAIN_IMAGES))


@hostile("imagefolder-dangling-link-and-folder-named-like-an-image")
def dangling_link_and_folder(folder: Path) -> Hostile:
    root, first = _folder(folder)
    os.symlink(folder / "nowhere.jpg", first / "broken.jpg")
    (first / "album.jpg").mkdir()
    return Hostile(train_folder(root, folder / "run"), check=_trained_on(TRAIN_IMAGES))


@hostile("imagefolder-every-image-unreadable")
def every_image_unreadable(folder: Path) -> Hostile:
    root, _ = _folder(folder)
    images = sorted(path for path in (root / "train").rglob("*") if path.is_file())
    for path in images:
        path.write_bytes(b"not an image")
    first = images[0]

    def check(outcome: Outcome) -> None:
        assert f"all {TRAIN_IMAGES} tried" in outcome.err and str(first) in outcome.err

    return Hostile(train_folder(root, folder / "run"), error="no image could be read", check=check)


def write_png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header announces width x height (8-bit grey) and whose pixels are missing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@hostile("imagefolder-100-megapixel-png")
def hundred_megapixel_png(folder: Path) -> Hostile:
    """Between Pillow's warning (89 MP) and error (179 MP) limits: skipped before decoding, counted as unreadable."""
    root, first = _folder(folder)
    write_png_header(first / "huge.png", 10_000, 10_000)

    def check(outcome: Outcome) -> None:
        assert f": {TRAIN_IMAGES + 1} train / 6 val samples" in outcome.err
        assert "DecompressionBomb" not in outcome.err
        assert "huge.png" in outcome.err and "--max-image-pixels" in outcome.err
        (record,) = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        assert record["num_skipped_images"] == 1

    return Hostile(train_folder(root, folder / "run"), check=check)


@hostile("imagefolder-max-image-pixels-zero")
def max_image_pixels_zero(folder: Path) -> Hostile:
    root, _ = _folder(folder)
    return Hostile(train_folder(root, folder / "run", "--max-image-pixels", "0"), error="--max-image-pixels")
