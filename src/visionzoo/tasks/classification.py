"""Classification: images -> logits -> cross-entropy -> top-1 / top-5.

Loaders hand over uint8 images; normalisation happens on the device (cheaper than in workers, and the
same code serves CIFAR-10 and ImageNet folders). Corrupt images arrive as None and are dropped here,
counted as `num_skipped_images`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from visionzoo.data.builtin import resolve_data
from visionzoo.data.transforms import EvalTransform, TrainTransform, normalize
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model
from visionzoo.recipes.base import ClassificationRecipe
from visionzoo.tasks.base import Batch, EvalResult, Gather


def train_transform(recipe: ClassificationRecipe) -> TrainTransform:
    return TrainTransform(
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


def eval_transform(recipe: ClassificationRecipe) -> EvalTransform:
    return EvalTransform(recipe.img_size, recipe.crop_pct, recipe.interpolation)


def build_classification_datasets(recipe: ClassificationRecipe) -> tuple[Dataset, Dataset]:
    root = resolve_data(recipe.data, recipe.data_format)
    if recipe.data_format == "cifar10":
        from visionzoo.data.cifar10 import Cifar10

        padding = recipe.crop_padding if recipe.train_crop == "pad" else 0
        train = Cifar10(root, train=True, seed=recipe.seed, padding=padding, hflip=recipe.hflip)
        return train, Cifar10(root, train=False)
    if recipe.data_format == "imagefolder":
        from visionzoo.data.imagefolder import build_imagefolder_datasets

        transforms = train_transform(recipe), eval_transform(recipe)
        options = {"seed": recipe.seed, "strict": recipe.strict_data, "max_pixels": recipe.max_image_pixels}
        return build_imagefolder_datasets(root, *transforms, **options)
    raise VisionZooError(f"--data-format {recipe.data_format}: expected cifar10 or imagefolder")


def class_names_of(dataset: Dataset) -> list[str] | None:
    return getattr(dataset, "class_names", None)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many labels are among the k highest logits, for each k (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


class ClassificationTask:
    sample_unit = "images"

    def __init__(self, recipe: ClassificationRecipe) -> None:
        self.recipe = recipe
        self._eval: dict[str, float] = {}

    def build_model(self) -> nn.Module:
        r = self.recipe
        kwargs = {"num_classes": r.num_classes, "drop_rate": r.drop_rate} | r.model_kwargs
        return create_model(r.model, pretrained=r.pretrained, **kwargs)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train, val = build_classification_datasets(self.recipe)
        names = class_names_of(train)
        if names is not None and len(names) != self.recipe.num_classes:
            raise VisionZooError(
                f"--data {self.recipe.data}: {len(names)} classes, but --num-classes is {self.recipe.num_classes}"
            )
        return train, val

    def collate(self, samples: list[Any]) -> Batch:
        kept = [s for s in samples if s is not None]
        if not kept:
            return torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), len(samples)
        images = torch.stack([s[0] for s in kept])
        labels = torch.tensor([s[1] for s in kept], dtype=torch.int64)
        return images, labels, len(samples) - len(kept)

    def to_device(self, batch: Batch, device: torch.device, channels_last: bool) -> Batch:
        images, labels, skipped = batch
        images = normalize(images.to(device, non_blocking=True), self.recipe.mean, self.recipe.std)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(device, non_blocking=True), skipped

    def train_step(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels, skipped = batch
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.recipe.label_smoothing)
        top1 = (logits.detach().argmax(1) == labels).float().mean() * 100.0
        return loss, {"top1": top1, "num_skipped_images": torch.tensor(float(skipped))}

    def eval_begin(self) -> None:
        self._eval = {"loss": 0.0, "top1": 0, "top5": 0, "count": 0, "skipped": 0}

    def eval_step(self, model: nn.Module, batch: Batch) -> None:
        images, labels, skipped = batch
        self._eval["skipped"] += skipped
        if len(labels) == 0:
            return
        logits = model(images).float()
        self._eval["loss"] += float(F.cross_entropy(logits, labels, reduction="sum"))
        top1, top5 = topk_correct(logits, labels)
        self._eval["top1"] += top1
        self._eval["top5"] += top5
        self._eval["count"] += len(labels)

    def eval_end(self, gather: Gather) -> EvalResult:
        total = {k: sum(part[k] for part in gather(self._eval)) for k in self._eval}
        count = max(1, total["count"])
        metrics = {
            "top1": 100.0 * total["top1"] / count,
            "top5": 100.0 * total["top5"] / count,
            "eval_loss": total["loss"] / count,
            "eval_images": total["count"],
            "eval_skipped_images": total["skipped"],
        }
        return EvalResult(metrics)

    def data_info(self) -> dict[str, Any]:
        return {}

    def write_eval_outputs(self, result: EvalResult, directory: Path) -> dict[str, str]:
        return {}

    def final_lines(self, final: dict[str, Any]) -> list[str]:
        lines = [f"Final Train Accuracy : {final['train_top1'] / 100:.4f}"] if "train_top1" in final else []
        return lines + [f"{key} : {final[key]:.4f}" for key in ("top1", "top5", "eval_loss") if key in final]

    def example_batch(self, batch_size: int) -> Batch:
        size = self.recipe.img_size
        images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
        return images, torch.randint(0, self.recipe.num_classes, (batch_size,)), 0
