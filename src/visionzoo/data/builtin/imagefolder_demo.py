"""Generated JPEGs in the ImageNet folder layout (`--data imagefolder-demo`, `visionzoo data make-imagefolder`).

Ten shape or texture classes drawn with numpy, in colours that only half of the time follow the class, on
noisy backgrounds with distractors, so a classifier must learn shapes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from visionzoo.data.cache import cache_dir
from visionzoo.errors import VisionZooError
from visionzoo.files import building_dir

SHAPES = ("disc", "ring", "square", "frame", "triangle", "cross", "star", "stripes", "checker", "dots")
DEMO_VERSION = 1
DEMO_SETTINGS = {"classes": 10, "per_class": 80, "val_per_class": 20, "size": 72}


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    channel = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return value - value * saturation * np.clip(np.minimum(channel, 4.0 - channel), 0.0, 1.0)


def _shape_mask(shape: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean [height, width] mask of one class's shape (objects) or texture, randomly placed and turned."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    side = min(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    if shape in ("stripes", "checker", "dots"):
        period = side / rng.uniform(3.0, 6.0)
        u = (xs * np.cos(angle) + ys * np.sin(angle)) / period + rng.uniform(0, 1)
        v = (-xs * np.sin(angle) + ys * np.cos(angle)) / period + rng.uniform(0, 1)
        if shape == "stripes":
            return u % 1.0 < 0.5
        if shape == "checker":
            return (np.floor(u) + np.floor(v)) % 2 == 0
        return (u % 1.0 - 0.5) ** 2 + (v % 1.0 - 0.5) ** 2 < 0.3**2
    radius = side * rng.uniform(0.2, 0.38)
    cx, cy = width * rng.uniform(0.3, 0.7), height * rng.uniform(0.3, 0.7)
    u = ((xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)) / radius
    v = (-(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)) / radius
    rho, phi = np.hypot(u, v), np.arctan2(v, u)
    if shape == "disc":
        return rho <= 1.0
    if shape == "ring":
        return (rho <= 1.0) & (rho >= 0.6)
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.75
    if shape == "frame":
        return (np.maximum(abs(u), abs(v)) <= 0.8) & (np.maximum(abs(u), abs(v)) >= 0.5)
    if shape == "triangle":
        normals = [(np.cos(a), np.sin(a)) for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3)]
        return np.all([u * nx + v * ny <= 0.5 for nx, ny in normals], axis=0)
    if shape == "cross":
        return ((abs(u) <= 0.9) & (abs(v) <= 0.3)) | ((abs(v) <= 0.9) & (abs(u) <= 0.3))
    return rho <= 0.4 + 0.6 * (0.5 + 0.5 * np.cos(5 * phi))  # star


def draw_sample(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class `label`: its shape or texture (label mod 10) in a colour that, half of the time,
    is the class's hue (so colour helps but shape must be learned), on a noisy background with distractors."""
    aspect, scale = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))), rng.uniform(0.8, 1.25)
    width = max(16, round(size * scale * math.sqrt(aspect)))
    height = max(16, round(size * scale / math.sqrt(aspect)))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = (_hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.4), rng.uniform(0.2, 0.9)) for _ in range(2))
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (xs * np.cos(direction) + ys * np.sin(direction)) / max(width, height) * 0.5 + 0.5
    image = top * (1 - ramp[..., None]) + bottom * ramp[..., None]
    class_hue = (label * 0.618034) % 1.0
    hue = class_hue + rng.normal(0, 0.03) if rng.random() < 0.5 else rng.uniform()
    colour = _hsv_to_rgb(hue % 1.0, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
    mask = _shape_mask(SHAPES[label % len(SHAPES)], width, height, rng)
    image[mask] = colour
    for _ in range(rng.integers(0, 3)):  # small blobs of any colour, so that no single pixel statistic decides
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), min(width, height) * rng.uniform(0.04, 0.09)
        image[(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r] = _hsv_to_rgb(rng.uniform(), rng.uniform(), rng.uniform())
    image = image * 255.0 + rng.normal(0, 6.0, size=image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def make_imagefolder(
    out: Path,
    classes: int = 10,
    per_class: int = 50,
    size: int = 96,
    val_per_class: int | None = None,
    seed: int = 0,
) -> Path:
    """Write generated JPEGs as `out/{train,val}/<class>/<name>.JPEG`; the same bytes for the same arguments.

    Sizes vary around `size` (x0.8..1.25, aspect 3/4..4/3). `val_per_class` defaults to per_class // 5 (at
    least 2). Built in a temporary folder beside `out` and renamed, so `out` is complete or absent.
    """
    out = Path(out)
    if classes < 2 or per_class < 1 or size < 16:
        raise VisionZooError(f"make-imagefolder: need --classes >= 2, --per-class >= 1, --size >= 16 ({out})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VisionZooError(f"{out}: already exists and is not an empty folder; choose a new path")
    val_per_class = max(2, per_class // 5) if val_per_class is None else val_per_class
    digits = len(str(classes - 1))
    names = [f"c{c:0{digits}d}_{SHAPES[c % len(SHAPES)]}" for c in range(classes)]
    with building_dir(out, "val") as tmp:
        for split_code, (split, count) in enumerate((("train", per_class), ("val", val_per_class))):
            for label, name in enumerate(names):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    rng = np.random.default_rng((seed, split_code, label, i))
                    quality = int(rng.integers(80, 96))
                    draw_sample(label, size, rng).save(folder / f"{split}_{name}_{i:05d}.JPEG", quality=quality)
    return out


def demo_imagefolder_dir(make: bool = True) -> Path:
    """The generated demo folder (10 classes, 80 train + 20 val images each, ~72 px) in the cache, made once.

    `make=False` only says where it would be.
    """
    path = cache_dir() / f"imagefolder-demo-v{DEMO_VERSION}"
    if make and not (path / "val").is_dir():
        make_imagefolder(path, **DEMO_SETTINGS)
    return path
