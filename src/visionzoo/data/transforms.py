"""Image transforms with Pillow, numpy and torch only, reproducible from a `np.random.Generator`.

The geometry follows torchvision/timm (RandomResizedCrop, Resize(int) + CenterCrop) so recipes and
weights carry over. Crops are never materialised: the crop box is handed to `Image.resize(box=...)`,
one resampling pass, and for JPEGs much larger than needed `Image.draft` lets libjpeg decode at 1/2,
1/4 or 1/8 scale first (several times faster on large photos). Outputs are uint8 CHW tensors;
normalisation happens later on the device (timm's fast_collate pattern), which is cheaper than in workers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance

from visionzoo.errors import VisionZooError
from visionzoo.files import is_regular_file

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

Box = tuple[float, float, float, float]  # left, top, width, height in source pixels
MAX_IMAGE_PIXELS = 40_000_000  # the default of --max-image-pixels (recipes/base.py says why)


def pil_interpolation(name: str) -> Image.Resampling:
    return INTERPOLATIONS[name]  # checked where it was read: the recipe's Literal type, the model card


def random_resized_crop_params(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(left, top, crop_width, crop_height) by torchvision's RandomResizedCrop.get_params.

    Ten tries of an area fraction uniform in `scale` and an aspect ratio log-uniform in `ratio`; if none
    fits, the whole image centre-cropped to the nearest aspect ratio inside `ratio`.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        crop_w = int(round(math.sqrt(target_area * aspect)))
        crop_h = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return left, top, crop_w, crop_h
    in_ratio = width / height
    if in_ratio < min(ratio):
        crop_w, crop_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        crop_w, crop_h = int(round(height * max(ratio))), height
    else:
        crop_w, crop_h = width, height
    return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h


def eval_resize(width: int, height: int, img_size: int, crop_pct: float) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of Resize(int(img_size / crop_pct)) + CenterCrop(img_size).

    Same integer arithmetic as torchvision: the shorter side becomes `int(img_size / crop_pct)`, the longer
    `int(short * long / shorter)`, and the crop offset is `round((resized - img_size) / 2)`. Images resize the
    crop box in one pass (`eval_crop_box`); video frames are resized whole by FFmpeg, then cropped.
    """
    if not 0 < crop_pct <= 1:
        raise VisionZooError(f"--crop-pct {crop_pct}: must be in (0, 1]")
    short = int(img_size / crop_pct)
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_w, new_h = int(short * width / height), short
    return new_w, new_h, int(round((new_w - img_size) / 2.0)), int(round((new_h - img_size) / 2.0))


def eval_crop_box(width: int, height: int, img_size: int, crop_pct: float) -> Box:
    """The source region that Resize(int(img_size / crop_pct)) + CenterCrop(img_size) keeps."""
    new_w, new_h, left, top = eval_resize(width, height, img_size, crop_pct)
    scale_x, scale_y = width / new_w, height / new_h
    return left * scale_x, top * scale_y, img_size * scale_x, img_size * scale_y


class ImageRejected(ValueError):
    """A file refused before any decoding: not a regular file, or more pixels than allowed."""


def open_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open without decoding, so that `resize_crop` can still choose a reduced JPEG decode.

    Only regular files are opened (a FIFO named like an image would block for ever), and an image of more than
    `max_pixels` pixels is refused from its header, before it is decoded. That limit is below Pillow's
    decompression-bomb warning, whose two lines are therefore not shown.
    """
    if not is_regular_file(path):
        raise ImageRejected("not a regular file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageRejected(f"{width} x {height} pixels, more than --max-image-pixels {max_pixels}")
    return image


def resize_crop(
    image: Image.Image,
    box: Box,
    size: tuple[int, int],
    interpolation: str = "bilinear",
    draft: bool = True,
) -> Image.Image:
    """Decode (if not yet), cut `box` (left, top, width, height) and resize it to `size` in one pass; RGB out.

    With `draft`, a not-yet-decoded JPEG at least twice as large as needed is decoded at 1/2, 1/4 or 1/8
    scale (never below what the crop needs at `size`), and the box is moved to the reduced image.
    """
    left, top, box_w, box_h = box
    width, height = image.size
    if draft and getattr(image, "tile", None):  # only formats that can decode reduced answer draft()
        need_w, need_h = math.ceil(width * size[0] / box_w), math.ceil(height * size[1] / box_h)
        if min(width // need_w, height // need_h) >= 2:
            drafted = image.draft("RGB", (need_w, need_h))
            if drafted is not None:
                factor = drafted[1][2] / width
                left, top, box_w, box_h = left * factor, top * factor, box_w * factor, box_h * factor
                width, height = image.size
    if image.mode != "RGB":
        image = image.convert("RGB")
    right, bottom = min(left + box_w, width), min(top + box_h, height)
    return image.resize(size, pil_interpolation(interpolation), box=(left, top, right, bottom))


def color_jitter(image: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation, each by a factor uniform in [1 - s, 1 + s], in random order.

    As torchvision's ColorJitter(s, s, s) on PIL images (timm's --color-jitter without hue).
    """
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    factors = rng.uniform(low, high, size=3)
    for which in rng.permutation(3):
        image = enhancers[which](image).enhance(float(factors[which]))
    return image


def random_pad_crop(image: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of the image's own size out of it zero-padded by `padding` pixels (the CIFAR recipe)."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    return padded[top : top + height, left : left + width]


def normalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 [B, 3, H, W] (on any device) -> float32 model input: (x / 255 - mean) / std per channel."""
    scale = 255.0 * torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    shift = 255.0 * torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    return (images.float() - shift) / scale


def to_chw_tensor(image: Image.Image | np.ndarray, hflip: bool = False) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    if hflip:
        array = array[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@dataclass(frozen=True)
class EvalTransform:
    """Shorter side to int(img_size / crop_pct), centre crop img_size (256 then 224 at 224 / 0.875)."""

    img_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    draft: bool = True

    def __post_init__(self) -> None:
        eval_crop_box(self.img_size, self.img_size, self.img_size, self.crop_pct)  # rejects a bad crop_pct now
        pil_interpolation(self.interpolation)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        box = eval_crop_box(*image.size, self.img_size, self.crop_pct)
        size = (self.img_size, self.img_size)
        return to_chw_tensor(resize_crop(image, box, size, self.interpolation, self.draft))


@dataclass(frozen=True)
class TrainTransform:
    """Crop (`rrc` | `pad` | `none`), horizontal flip, optional colour jitter; all randomness from `rng`.

    `rrc` is RandomResizedCrop(scale, ratio); `pad` resizes the shorter side to img_size, centre crops,
    then takes a random img_size crop of the image zero-padded by `padding` (the CIFAR recipe); `none`
    uses the evaluation geometry.
    """

    img_size: int = 224
    crop: str = "rrc"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    padding: int = 4
    crop_pct: float = 0.875
    hflip: float = 0.5
    jitter: float = 0.0
    interpolation: str = "bilinear"
    draft: bool = True

    def __post_init__(self) -> None:
        eval_crop_box(self.img_size, self.img_size, self.img_size, self.crop_pct)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        size = (self.img_size, self.img_size)
        if self.crop == "rrc":
            box = random_resized_crop_params(*image.size, self.scale, self.ratio, rng)
        else:
            box = eval_crop_box(*image.size, self.img_size, 1.0 if self.crop == "pad" else self.crop_pct)
        out = resize_crop(image, box, size, self.interpolation, self.draft)
        if self.crop == "pad" and self.padding:
            out = Image.fromarray(random_pad_crop(np.asarray(out), self.padding, rng))
        flip = bool(rng.random() < self.hflip)
        if self.jitter > 0:
            out = color_jitter(out, self.jitter, rng)
        return to_chw_tensor(out, hflip=flip)


def input_geometry(preprocessing: dict[str, Any], width: int, height: int) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of a width x height picture as evaluation prepares it:
    the eval crop (`eval_resize`), or a whole-picture resize to img_size (CIFAR recipes). Images and video frames
    (`visionzoo.data.video`) both take their geometry from here."""
    size = int(preprocessing["img_size"])
    if preprocessing.get("resize") == "whole":
        return size, size, 0, 0
    return eval_resize(width, height, size, float(preprocessing["crop_pct"]))
