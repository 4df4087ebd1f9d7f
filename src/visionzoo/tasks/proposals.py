"""Temporal action proposals (BMN): features -> (confidence map, start, end) -> BMN loss -> Soft-NMS -> AR@AN.

Validation items carry their video's record (name, durations, ground truth), so evaluation needs no state
from `build_datasets`: each rank post-processes its videos (`visionzoo.tasks.postprocess`), the proposals and
ground truth are gathered, and scored like the ActivityNet toolkit (`visionzoo.tasks.anet_metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from visionzoo.data.activitynet import ActivityNetFeatures, FeatureAugment, VideoRecord
from visionzoo.data.builtin import resolve_data
from visionzoo.data.feature_folder import read_features_json
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model
from visionzoo.recipes.base import ProposalRecipe
from visionzoo.tasks.anet_metrics import AR_AT, evaluate_proposals, plot_ar_an
from visionzoo.tasks.base import Batch, EvalResult, Gather
from visionzoo.tasks.bmn_loss import LOSS_TERMS, bmn_loss, bmn_targets
from visionzoo.tasks.detection import DetectionSettings
from visionzoo.tasks.postprocess import (
    SoftNMSSettings,
    post_process,
    reference_duration,
    score_candidates,
    video_id,
    write_proposals,
    write_results,
)


def pad_segments(segments: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, K_max, 2] zero-padded, [B, K_max] valid) from per-video [K_i, 2] segments."""
    longest = max((len(s) for s in segments), default=0)
    padded = torch.zeros(len(segments), longest, 2, dtype=segments[0].dtype if segments else torch.float32)
    valid = torch.zeros(len(segments), longest, dtype=torch.bool)
    for i, s in enumerate(segments):
        padded[i, : len(s)], valid[i, : len(s)] = s, True
    return padded, valid


def checked_features(root: Path, recipe: ProposalRecipe) -> dict[str, Any] | None:
    """The data folder's features.json (None without one), checked against the recipe's shape."""
    features = read_features_json(root)
    if features is None:
        return None
    for field, flag in (
        ("feat_dim", "--feat-dim"),
        ("temporal_scale", "--temporal-scale"),
        ("feature_dir", "--feature-dir"),
    ):
        if field in features and features[field] != getattr(recipe, field):
            raise VisionZooError(
                f"{flag} {getattr(recipe, field)}: the features in {root} have {field} {features[field]} "
                f"({features['backbone']} {features['layer']}, features.json); train with {flag} {features[field]}"
            )
    return features


class ProposalTask:
    """Batches are (features [B, D, T], gt_iou_map, gt_start, gt_end, the videos' records)."""

    sample_unit = "videos"

    def __init__(self, recipe: ProposalRecipe) -> None:
        self.recipe = recipe
        self.settings = SoftNMSSettings.of(recipe)
        self.detection = DetectionSettings.of(recipe)
        self._eval: dict[str, Any] = {}
        self._generator: torch.Generator | None = None
        self.features: dict[str, Any] | None = None  # the data folder's features.json, once datasets are built

    def build_model(self) -> nn.Module:
        r = self.recipe
        kwargs = {
            "temporal_scale": r.temporal_scale,
            "prop_boundary_ratio": r.prop_boundary_ratio,
            "num_sample": r.num_sample,
            "num_sample_perbin": r.num_sample_perbin,
            "feat_dim": r.feat_dim,
        } | r.model_kwargs
        return create_model(r.model, pretrained=r.pretrained, **kwargs)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        r = self.recipe
        if r.data_format != "activitynet":
            raise VisionZooError(f"--data-format {r.data_format}: the proposals task reads activitynet")
        root = resolve_data(r.data, r.data_format, temporal_scale=r.temporal_scale, feat_dim=r.feat_dim)
        self.features = checked_features(root, r)
        snippet_frames = self.features["snippet_frames"] if self.features else 16
        augment = FeatureAugment(r.seed, r.feature_dropout, r.temporal_jitter)
        train, val = (
            ActivityNetFeatures(
                root,
                subset,
                r.temporal_scale,
                r.feat_dim,
                r.video_info,
                r.video_anno,
                r.feature_dir,
                snippet_frames,
                augment if subset == "train" else None,
            )  # fmt: skip
            for subset in ("train", "validation")
        )
        return train, val

    def data_info(self) -> dict[str, Any]:
        """How the features were made (features.json), for the run's config.yaml and the model card."""
        return {"features": self.features} if self.features else {}

    def collate(self, samples: list[Any]) -> Batch:
        features = torch.stack([s[0] for s in samples])
        segments, valid = pad_segments([s[1] for s in samples])
        gt_iou_map, gt_start, gt_end = bmn_targets(segments, valid, self.recipe.temporal_scale)
        return features, gt_iou_map, gt_start, gt_end, [s[2] for s in samples]

    def to_device(self, batch: Batch, device: torch.device, channels_last: bool) -> Batch:
        *tensors, videos = batch
        return (*(t.to(device, non_blocking=True) for t in tensors), videos)

    def train_step(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features, gt_iou_map, gt_start, gt_end, _ = batch
        conf_map, start, end = model(features)
        return bmn_loss(conf_map, start, end, gt_iou_map, gt_start, gt_end)

    def eval_begin(self) -> None:
        self._eval = {"sums": dict.fromkeys(("loss", *LOSS_TERMS), 0.0), "batches": 0, "videos": {}}
        self._generator = None

    def eval_outputs(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's (confidence map, start, end) of an evaluation batch, its loss added to the pass's sums."""
        features, gt_iou_map, gt_start, gt_end, _ = batch
        if self._generator is None:  # its own seeded draws: a deterministic loss, the training RNG untouched
            self._generator = torch.Generator(device=features.device).manual_seed(self.recipe.seed)
        conf_map, start, end = model(features)
        loss, terms = bmn_loss(conf_map, start, end, gt_iou_map, gt_start, gt_end, self._generator)
        for name, value in {"loss": loss, **terms}.items():
            self._eval["sums"][name] += float(value)
        self._eval["batches"] += 1
        return conf_map, start, end

    def eval_step(self, model: nn.Module, batch: Batch) -> None:
        conf_map, start, end = self.eval_outputs(model, batch)
        videos = batch[-1]
        durations = [reference_duration(v.duration_second, v.duration_frame, v.snippet_frames) for v in videos]
        proposals = post_process(
            score_candidates(start, end, conf_map), durations, self.recipe.temporal_scale, self.settings
        )
        for video, found in zip(videos, proposals, strict=True):
            self._eval["videos"][video_id(video.name)] = (found, video.segments, video.labels)

    def eval_end(self, gather: Gather) -> EvalResult:
        parts = gather(self._eval)
        videos = {name: entry for part in parts for name, entry in part["videos"].items()}
        return self.score(parts, {name: found for name, (found, _, _) in videos.items()}, videos)

    def score(self, parts: list[dict[str, Any]], results: dict[str, list[dict[str, Any]]], videos: dict) -> EvalResult:
        """Loss, AR@AN and (with `classes`) detection mAP of the pass: `results` are the proposals per video,
        `videos` hold (..., segments, labels) per video."""
        batches = max(1, sum(part["batches"] for part in parts))
        metrics = {f"eval_{name}": sum(p["sums"][name] for p in parts) / batches for name in ("loss", *LOSS_TERMS)}
        truth = {name: entry[-2:] for name, entry in videos.items()}
        found = {
            name: np.array([[*p["segment"], p["score"]] for p in items], dtype=np.float64).reshape(-1, 3)
            for name, items in results.items()
        }
        segments = {name: segments for name, (segments, _) in truth.items()}
        evaluation = evaluate_proposals(segments, found, self.settings.max_proposals)
        metrics |= {f"AR@{n}": evaluation[f"AR@{n}"] for n in AR_AT} | {"AUC": evaluation["AUC"]}
        outputs = {"proposals": results, "curve": evaluation["curve"]}
        if self.recipe.classes:
            detection, outputs["detections"] = self.detection.score(results, truth)
            metrics |= detection
        return EvalResult(metrics | {"eval_videos": len(results)}, outputs)

    def write_eval_outputs(self, result: EvalResult, directory: Path) -> dict[str, str]:
        """The proposals (ActivityNet JSON), the AR-AN curve (PNG) and, with `classes`, the detections."""
        json_path = write_proposals(Path(directory) / "proposals.json", result.outputs["proposals"])
        plot_path = plot_ar_an(result.outputs["curve"], Path(directory) / "ar_an.png", title=self.recipe.name)
        written = {"proposals_file": str(json_path), "ar_an_plot": str(plot_path)}
        if "detections" in result.outputs:
            path = write_results(Path(directory) / "detections.json", result.outputs["detections"])
            written["detections_file"] = str(path)
        return written

    def final_lines(self, final: dict[str, Any]) -> list[str]:
        keys = ("AR@1", "AR@5", "AR@10", "AR@100", "AUC", *(k for k in final if k.startswith("mAP@")), "average_mAP")
        return [f"{key} : {final[key]:.4f}" for key in (*keys, "eval_loss") if key in final]

    def example_batch(self, batch_size: int) -> Batch:
        r = self.recipe
        generator = torch.Generator().manual_seed(0)
        features = torch.randn(batch_size, r.feat_dim, r.temporal_scale, generator=generator)
        segments = torch.rand(batch_size, 2, 2, generator=generator).sort(dim=-1).values
        videos = [
            VideoRecord(f"example_{i}", "validation", 100.0, 1600, 100.0, segments[i].double().numpy() * 100.0, [])
            for i in range(batch_size)
        ]
        return self.collate([(features[i], segments[i], videos[i]) for i in range(batch_size)])
