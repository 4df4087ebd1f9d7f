"""Video-level classification: snippet features -> class scores -> top-1 / top-5 / mAP, and the classes JSON.

The built-in classifier that turns proposals into detections (`visionzoo.tasks.detection`): trained on the
labels of the detection data's own annotations (ActivityNet: each video's activity; THUMOS14: the classes of
its instances, as a distribution when a video holds several), and its evaluation writes the classes of the
evaluated videos in the ActivityNet classification format, which `detect` and `--classes` read.
Metrics follow the toolkit's `eval_classification.py`: hit@k (a video counts when one of its labels is among
the k best classes) and the mean over classes of the interpolated AP of the videos ranked by that class.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from visionzoo.data.builtin import resolve_data
from visionzoo.data.feature_folder import FEATURES_JSON, read_feature_description, read_features_json
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model
from visionzoo.recipes.base import VideoClassifierRecipe
from visionzoo.tasks.base import Batch, EvalResult, Gather
from visionzoo.tasks.detection_metrics import interpolated_ap
from visionzoo.tasks.postprocess import video_id, write_results

logger = logging.getLogger(__name__)

CLASSES_WRITTEN = 20  # best classes per video in the JSON: detection takes the top 1-2, the hit@5 needs 5


def class_targets(labels: list[list[str]], index: dict[str, int]) -> torch.Tensor:
    """[B, C] float32: each video's share of instances per class (one-hot for one activity), zeros if none."""
    targets = torch.zeros(len(labels), len(index))
    for row, names in enumerate(labels):
        for name in names:
            targets[row, index[name]] += 1.0 / len(names)
    return targets


def hit_at(scores: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Percent of the labelled videos with one of their classes among their k best (scores, positives [V, C]),
    ranked as the toolkit's `compute_video_hit_at_k` (`argsort()[::-1]`, ties included)."""
    labelled = positives.any(axis=1)
    best = np.argsort(scores, axis=1)[:, ::-1][:, :k]
    hits = np.take_along_axis(positives, best, axis=1).any(axis=1)
    return 100.0 * float(hits[labelled].mean()) if labelled.any() else 0.0


def classification_map(scores: np.ndarray, positives: np.ndarray) -> float:
    """Percent: mean over the classes that have a video of the AP of all videos ranked by that class's score."""
    aps = []
    for c in np.flatnonzero(positives.any(axis=0)):
        tp = positives[np.argsort(scores[:, c])[::-1], c].astype(np.float64)
        tp_cumsum, fp_cumsum = np.cumsum(tp), np.cumsum(1.0 - tp)
        aps.append(interpolated_ap(tp_cumsum / (tp_cumsum + fp_cumsum), tp_cumsum / tp.sum()))
    return 100.0 * float(np.mean(aps)) if aps else 0.0


class VideoClassificationTask:
    """Batches are (features [B, D, T], class shares [B, C], labelled [B] bool, the videos' records)."""

    sample_unit = "videos"

    def __init__(self, recipe: VideoClassifierRecipe) -> None:
        self.recipe = recipe
        self._eval: dict[str, Any] = {}

    @cached_property
    def root(self) -> Path:
        r = self.recipe
        return resolve_data(r.data, r.data_format, temporal_scale=r.temporal_scale, feat_dim=r.feat_dim)

    @cached_property
    def features(self) -> dict[str, Any] | None:
        """The data folder's features.json (None without one: features made elsewhere): a feature folder's
        whole description for ActivityNet-layout data, the size and stride of per-video snippet features else."""
        if self.recipe.data_format == "activitynet":
            return read_features_json(self.root)
        path = self.root / FEATURES_JSON
        return read_feature_description(path) if path.is_file() else None

    @cached_property
    def shape(self) -> VideoClassifierRecipe:
        """The recipe with the input size the data's features.json gives (feat_dim; for ActivityNet-layout data
        also T and its folder), so a feature folder of any backbone trains without --feat-dim."""
        r, found = self.recipe, self.features
        if found is None:
            return r
        keys = ("feat_dim", "temporal_scale", "feature_dir") if r.data_format == "activitynet" else ("feat_dim",)
        changes = {key: found[key] for key in keys if key in found and found[key] != getattr(r, key)}
        if changes:
            said = ", ".join(f"{key} {value} (not {getattr(r, key)})" for key, value in changes.items())
            logger.info("%s/features.json: %s", self.root, said)
        return r.replace(**changes)

    @cached_property
    def class_names(self) -> list[str]:
        """The sorted labels of every video the data annotates (train and evaluation subsets alike)."""
        r = self.shape
        if r.data_format == "activitynet":
            from visionzoo.data.activitynet import load_annotations

            videos = load_annotations(self.root, r.video_info, r.video_anno)
            labels = {label for video in videos for label in video.labels}
        elif r.data_format == "thumos14":
            from visionzoo.data.thumos14 import load_annotation_source

            annotations = load_annotation_source(self.root / r.video_anno)
            labels = {label for _, names in annotations.values() for label in names}
        else:
            raise VisionZooError(f"--data-format {r.data_format}: video classification reads activitynet or thumos14")
        if r.num_classes and r.num_classes != len(labels):
            raise VisionZooError(f"--data {r.data}: {len(labels)} classes, but --num-classes is {r.num_classes}")
        if not labels:
            raise VisionZooError(f"--data {r.data}: the annotations hold no label to learn")
        return sorted(labels)

    @cached_property
    def class_index(self) -> dict[str, int]:
        return {name: c for c, name in enumerate(self.class_names)}

    def build_model(self) -> nn.Module:
        r = self.shape
        kwargs = {"num_classes": len(self.class_names), "feat_dim": r.feat_dim, "drop_rate": r.drop_rate}
        return create_model(r.model, pretrained=r.pretrained, **(kwargs | r.model_kwargs))

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        r = self.shape
        if r.data_format == "activitynet":
            from visionzoo.data.activitynet import ActivityNetFeatures

            return tuple(
                ActivityNetFeatures(
                    self.root, subset, r.temporal_scale, r.feat_dim, r.video_info, r.video_anno, r.feature_dir
                )
                for subset in (r.train_subset, r.eval_subset)
            )
        from visionzoo.data.thumos14 import WholeVideos, load_long_videos

        return tuple(
            WholeVideos(
                load_long_videos(
                    self.root, subset, r.feat_dim, r.video_info, r.video_anno, r.feature_dir, r.snippet_frames
                ),
                r.temporal_scale,
            )
            for subset in (r.train_subset, r.eval_subset)
        )

    def collate(self, samples: list[Any]) -> Batch:
        """Items are (features, ..., record): ActivityNet items carry segments in between, whole videos do not."""
        records = [s[-1] for s in samples]
        targets = class_targets([record.labels for record in records], self.class_index)
        return torch.stack([s[0] for s in samples]), targets, targets.sum(dim=1) > 0, records

    def to_device(self, batch: Batch, device: torch.device, channels_last: bool) -> Batch:
        features, targets, labelled, records = batch
        return features.to(device), targets.to(device), labelled.to(device), records

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the class shares (label-smoothed) over the labelled videos; unlabelled add nothing."""
        smoothing = self.recipe.label_smoothing
        smoothed = (1.0 - smoothing) * targets + smoothing / targets.shape[1]
        per_video = -(smoothed * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
        return (per_video * labelled).sum() / labelled.sum().clamp(min=1)

    def train_step(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features, targets, labelled, _ = batch
        logits = model(features)
        hits = (targets.gather(1, logits.argmax(dim=1, keepdim=True))[:, 0] > 0) & labelled
        top1 = 100.0 * hits.sum() / labelled.sum().clamp(min=1)
        return self._loss(logits, targets, labelled), {"top1": top1.detach().float()}

    def eval_begin(self) -> None:
        self._eval = {"loss": 0.0, "labelled": 0, "videos": {}}

    def eval_step(self, model: nn.Module, batch: Batch) -> None:
        features, targets, labelled, records = batch
        logits = model(features).float()
        self._eval["loss"] += float(self._loss(logits, targets, labelled)) * int(labelled.sum())
        self._eval["labelled"] += int(labelled.sum())
        probabilities = torch.softmax(logits, dim=1).double().cpu().numpy()
        for record, row, target in zip(records, probabilities, targets.cpu().numpy(), strict=True):
            self._eval["videos"][video_id(record.name)] = (row, target > 0)

    def eval_end(self, gather: Gather) -> EvalResult:
        parts = gather(self._eval)
        videos = {name: entry for part in parts for name, entry in part["videos"].items()}
        scores = np.stack([row for row, _ in videos.values()])
        positives = np.stack([positive for _, positive in videos.values()])
        labelled = sum(part["labelled"] for part in parts)
        metrics = {
            "top1": hit_at(scores, positives, 1),
            "top5": hit_at(scores, positives, 5),
            "mAP": classification_map(scores, positives),
            "eval_loss": sum(part["loss"] for part in parts) / max(1, labelled),
            "eval_videos": len(videos),
        }
        best = np.argsort(-scores, axis=1, kind="stable")[:, :CLASSES_WRITTEN]
        results = {
            name: [{"label": self.class_names[c], "score": float(row[c])} for c in order]
            for name, row, order in zip(videos, scores, best, strict=True)
        }
        return EvalResult(metrics, {"classes": results})

    def data_info(self) -> dict[str, Any]:
        """The input size the data gave, how its features were made and the class names, for config.yaml and the
        model card (`predict --classes` checks the features against the BMN's and names the classes)."""
        r = self.shape
        info = {"feat_dim": r.feat_dim, "temporal_scale": r.temporal_scale, "feature_dir": r.feature_dir}
        classes = {"num_classes": len(self.class_names), "class_names": self.class_names}
        return info | classes | ({"features": self.features} if self.features else {})

    def write_eval_outputs(self, result: EvalResult, directory: Path) -> dict[str, str]:
        """The classes of the evaluated videos (ActivityNet classification JSON), best first."""
        path = write_results(Path(directory) / "classification.json", result.outputs["classes"])
        return {"classes_file": str(path)}

    def final_lines(self, final: dict[str, Any]) -> list[str]:
        return [f"{key} : {final[key]:.4f}" for key in ("top1", "top5", "mAP", "eval_loss") if key in final]

    def example_batch(self, batch_size: int) -> Batch:
        r = self.shape
        classes = len(self.class_names)
        generator = torch.Generator().manual_seed(0)
        features = torch.randn(batch_size, r.feat_dim, r.temporal_scale, generator=generator)
        targets = torch.nn.functional.one_hot(torch.arange(batch_size) % classes, classes).float()
        return features, targets, torch.ones(batch_size, dtype=torch.bool), []
