"""ImageNet-style image folders: decoding and augmentation with Pillow, plus a generated demo dataset.

Layouts of `root/<split>/` (a split folder is `train`, `val` or `validation`):

- class folders, `<split>/<class>/**/<image>` (torchvision ImageFolder; images may sit in sub-folders);
- flat, for val only: `<split>/<image>` with a label file named `<split>_labels.txt`, `<split>_labels.csv`,
  `LOC_<split>_solution.csv` or `<split>.txt`, looked for in `<split>/` and then in `root/`. One image per
  line, `filename label` or `filename,label`; the filename may omit its extension (as in Kaggle's
  LOC_val_solution.csv), only the first word of the label is read (so LOC's "n01751748 x y x y ..." works),
  a first line whose label is no class is taken as a header. A label is a class folder name of train, or
  else an integer read as a 0-based index in sorted class order (Caffe's val.txt convention).

Classes are the visible sub-folders sorted with plain `sorted()`, i.e. torchvision ImageFolder's indices.
timm sorts with a natural key ("class10" after "class9"), so checkpoints of timm folder-trained models may
number such classes differently. Hidden entries (".ipynb_checkpoints") are ignored. Image extensions are
matched case-insensitively.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from visionzoo.data.cache import building_dir, cache_dir
from visionzoo.data.sampling import SampleKey, sample_rng
from visionzoo.data.transforms import EvalTransform, TrainTransform, open_image
from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import ClassificationRecipe

logger = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LABEL_FILES = ("{split}_labels.txt", "{split}_labels.csv", "LOC_{split}_solution.csv", "{split}.txt")
VAL_SPLITS = ("val", "validation")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def find_classes(split_dir: Path) -> list[str]:
    """Visible sub-folders in plain `sorted()` order (torchvision ImageFolder, not timm's natural sort)."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def images_under(folder: Path) -> list[str]:
    """Image files below `folder`, recursively, as sorted paths relative to it (symlinks followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        found += [name if rel == "." else os.path.join(rel, name) for name in sorted(filenames) if is_image_file(name)]
    return found


def images_under_top(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_file(e.name))


def find_label_file(root: Path, split: str) -> Path | None:
    for folder in (root / split, root):
        for pattern in LABEL_FILES:
            if (folder / pattern.format(split=split)).is_file():
                return folder / pattern.format(split=split)
    return None


def read_label_file(path: Path, class_names: list[str]) -> dict[str, int]:
    """{filename or stem: class index} from `filename label` / `filename,label` lines (see module docstring)."""
    class_to_idx = {name: i for i, name in enumerate(class_names)}
    labels: dict[str, int] = {}
    first = True
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        is_first, first = first, False
        fields = line.split(",", 1) if "," in line else line.split(None, 1)
        words = fields[1].split() if len(fields) == 2 else []
        if not words:
            raise VisionZooError(f"{path}:{number}: expected 'filename label' or 'filename,label', got {line!r}")
        name, label = fields[0].strip(), words[0]
        if label in class_to_idx:
            labels[name] = class_to_idx[label]
        elif label.isdigit() and int(label) < len(class_names):
            labels[name] = int(label)
        elif is_first:
            continue  # a header such as "ImageId,PredictionString"
        else:
            raise VisionZooError(
                f"{path}:{number}: label {label!r} is neither a class folder of train "
                f"nor a class index 0..{len(class_names) - 1}"
            )
    return labels


def scan_split(root: Path, split: str, class_names: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    """(class names, image paths relative to root/split, labels) for either layout; errors name the path."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise VisionZooError(f"{split_dir}: no such directory (expected {split}/<class>/<images>)")
    folders = find_classes(split_dir)
    if folders:
        if class_names is not None and folders != class_names:
            only_here = sorted(set(folders) - set(class_names))
            only_train = sorted(set(class_names) - set(folders))
            raise VisionZooError(
                f"{split_dir}: class folders differ from train: only in {split}: {_few(only_here)}; "
                f"only in train: {_few(only_train)}"
            )
        paths, labels = [], []
        for index, name in enumerate(folders):
            found = images_under(split_dir / name)
            if not found and class_names is None:
                raise VisionZooError(f"{split_dir / name}: class folder without images ({', '.join(IMG_EXTENSIONS)})")
            paths += [os.path.join(name, p) for p in found]
            labels += [index] * len(found)
        if not paths:
            raise VisionZooError(f"{split_dir}: no images in its class folders")
        return folders, paths, labels
    flat = images_under_top(split_dir)
    if not flat:
        raise VisionZooError(f"{split_dir}: empty (expected {split}/<class>/<images>)")
    if class_names is None:
        raise VisionZooError(f"{split_dir}: images without class folders (expected {split}/<class>/<images>)")
    label_file = find_label_file(root, split)
    if label_file is None:
        tried = ", ".join(p.format(split=split) for p in LABEL_FILES)
        raise VisionZooError(f"{split_dir}: {len(flat)} images but no class folders and no label file ({tried})")
    by_name = read_label_file(label_file, class_names)
    labels = [by_name.get(name, by_name.get(os.path.splitext(name)[0], -1)) for name in flat]
    missing = [name for name, label in zip(flat, labels, strict=True) if label < 0]
    if missing:
        raise VisionZooError(f"{label_file}: no label for {len(missing)} of the {len(flat)} images (e.g. {missing[0]})")
    return list(class_names), flat, labels


def _few(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class ImageFolderDataset(Dataset):
    """Items `(uint8 tensor [3, img_size, img_size], label)` by key (index, epoch); None for a corrupt image.

    A file that cannot be decoded is logged once (per process) and counted in `skipped_files`, and the
    item is None (the collate drops it); with `recipe.strict_data` a VisionZooError naming it is raised.
    Paths are kept in one numpy bytes array, not a list of str, so forked loader workers do not copy them.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        recipe: ClassificationRecipe,
        train: bool,
        class_names: list[str] | None = None,
    ) -> None:
        self.root, self.split, self.train = Path(root), split, train
        self.class_names, paths, labels = scan_split(self.root, split, class_names)
        self._paths = np.array([os.fsencode(p) for p in paths])
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.strict = recipe.seed, recipe.strict_data
        self.skipped_files: set[str] = set()
        if train:
            self.transform: TrainTransform | EvalTransform = TrainTransform(
                img_size=recipe.img_size,
                crop=recipe.train_crop,
                scale=(recipe.rrc_scale[0], recipe.rrc_scale[1]),
                ratio=(recipe.rrc_ratio[0], recipe.rrc_ratio[1]),
                padding=recipe.crop_padding,
                crop_pct=recipe.crop_pct,
                hflip=recipe.hflip,
                jitter=recipe.color_jitter,
                interpolation=recipe.interpolation,
            )
        else:
            self.transform = EvalTransform(recipe.img_size, recipe.crop_pct, recipe.interpolation)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        return self.root / self.split / os.fsdecode(self._paths[index])

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int] | None:
        index, epoch = key
        path = self.path(index)
        try:
            with open_image(path) as image:
                if isinstance(self.transform, TrainTransform):
                    tensor = self.transform(image, sample_rng(self.seed, epoch, index))
                else:
                    tensor = self.transform(image)
        except Exception as err:  # any decoder failure; a loader worker must not die of one bad file
            reason = f"{type(err).__name__}: {err}"
            if self.strict:
                raise VisionZooError(f"{path}: unreadable image ({reason}); --strict-data is on") from None
            if str(path) not in self.skipped_files:
                self.skipped_files.add(str(path))
                logger.warning("skipping unreadable image %s (%s)", path, reason)
            return None
        return tensor, int(self.labels[index])


def build_imagefolder_datasets(
    recipe: ClassificationRecipe, data: str | Path
) -> tuple[ImageFolderDataset, ImageFolderDataset]:
    """(train, val) of `data`/train and `data`/val (or validation); val must have train's class folders."""
    if str(data) == "imagefolder-demo":
        root = demo_imagefolder_dir()
    elif not str(data):
        raise VisionZooError("--data: give a folder with train/ and val/ (or imagefolder-demo)")
    else:
        root = Path(data)
    if not root.is_dir():
        raise VisionZooError(f"--data {root}: no such directory (expected train/ and val/ inside)")
    train = ImageFolderDataset(root, "train", recipe, train=True)
    val_split = next((s for s in VAL_SPLITS if (root / s).is_dir()), VAL_SPLITS[0])
    val = ImageFolderDataset(root, val_split, recipe, train=False, class_names=train.class_names)
    return train, val


# --- a generated dataset in the same layout ------------------------------------------------------------------

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
