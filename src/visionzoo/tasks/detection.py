"""Proposals -> detections: every proposal of a video paired with the video's top-k classes.

The classes come from a video-level classification in the ActivityNet classification format
(`{"results": {video: [{"label", "score"}]}}`: what the CUHK 2017 file is, and what the built-in video
classifier writes). Fusion of the two scores:
- `product`: proposal x class, as OpenTAD's `CUHKANETClassifier` and `UntrimmedNetTHUMOSClassifier` (BMN,
  G-TAD on ActivityNet and THUMOS14, top-2 classes);
- `sqrt`: sqrt(proposal x class), as ActionFormer's `postprocess_results` and OpenTAD's `StandardClassifier`.
Both keep the ranking of one class's detections; they differ in how the two classes' detections interleave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.errors import VisionZooError
from visionzoo.tasks.postprocess import VideoClass, read_results, validate_results, video_id, write_results

logger = logging.getLogger(__name__)

Classes = dict[str, list[tuple[str, float]]]  # video id -> (label, score), best first


def classes_of(results: Mapping[str, Any], source: str) -> Classes:
    """Each video's (label, score) entries of a classification `results` object, best first (stable)."""
    found = validate_results(results, source, "classification", VideoClass)
    return _ranked(found)


def _ranked(found: Mapping[str, list[VideoClass]]) -> Classes:
    return {
        video_id(name): sorted(((c.label, c.score) for c in items), key=lambda entry: -entry[1])
        for name, items in found.items()
    }


def load_classes(path: str | Path) -> Classes:
    """The video-level classes of an ActivityNet classification JSON."""
    return _ranked(read_results(Path(path), "classification", VideoClass))


def check_fusion(top_k: int, fusion: str, max_per_video: int) -> None:
    if top_k < 1 or max_per_video < 1:
        raise VisionZooError(f"--top-k {top_k}, --max-per-video {max_per_video}: both must be at least 1")


def fuse(
    proposals: Mapping[str, list[dict[str, Any]]],
    classes: Classes,
    top_k: int = 2,
    fusion: str = "product",
    max_per_video: int = 100,
) -> dict[str, list[dict[str, Any]]]:
    """Detections {video: [{"label", "score", "segment"}]}, best first, at most `max_per_video` per video.

    Videos without classes are left out with a warning (none at all is an error).
    """
    check_fusion(top_k, fusion, max_per_video)
    combine = (lambda p, c: p * c) if fusion == "product" else (lambda p, c: math.sqrt(p * c))
    detections, unclassified = {}, []
    for name, found in proposals.items():
        video = video_id(name)
        if video not in classes:
            unclassified.append(video)
            continue
        fused = [
            {"label": label, "score": combine(float(p["score"]), score), "segment": list(p["segment"])}
            for label, score in classes[video][:top_k]
            for p in found
        ]
        detections[video] = sorted(fused, key=lambda d: -d["score"])[:max_per_video]
    if unclassified:
        if not detections:
            raise VisionZooError(f"none of the {len(unclassified)} videos with proposals has classes")
        logger.warning(
            "%d of %d videos with proposals have no classes and are left out (first: %s)",
            len(unclassified), len(proposals), ", ".join(unclassified[:5]),
        )  # fmt: skip
    return detections


def baseline_detections(
    durations: Mapping[str, float],
    classes: Classes,
    window_seconds: Sequence[float] | None = None,
    top_k: int = 2,
    max_per_video: int = 200,
) -> dict[str, list[dict[str, Any]]]:
    """Detections without a proposal model: sliding windows (`sliding_window_proposals` at its fractions of the
    video, or windows of fixed `window_seconds` for long videos) x the video classes (product fusion)."""
    from visionzoo.tasks.postprocess import sliding_window_proposals

    proposals = {}
    for name, duration in durations.items():
        scales = {} if window_seconds is None else {"scales": tuple(w / duration for w in window_seconds)}
        proposals[name] = sliding_window_proposals(duration, max_proposals=max_per_video, **scales)
    return fuse(proposals, classes, top_k, "product", max_per_video)


def detect_file(
    proposals: Path, classes: Path, output: Path, top_k: int = 2, fusion: str = "product", max_per_video: int = 100
) -> tuple[Path, int, int]:
    """`visionzoo detect`: (the detections file, videos, detections)."""
    from visionzoo.tasks.postprocess import load_proposals

    found = {
        name: [{"segment": [float(s), float(e)], "score": float(score)} for s, e, score in rows]
        for name, rows in load_proposals(proposals).items()
    }
    detections = fuse(found, load_classes(classes), top_k, fusion, max_per_video)
    path = write_results(output, detections)
    return path, len(detections), sum(len(d) for d in detections.values())


@dataclass(frozen=True)
class DetectionSettings:
    """How a proposal task's evaluation makes and scores detections: the recipe's fields, checked up front (a
    bad classes file or option fails before any work)."""

    classes: Classes | None  # None: proposals only ("" or an unresolved "auto")
    top_k: int
    fusion: str
    max_per_video: int
    tiou_thresholds: np.ndarray
    source: str

    @classmethod
    def of(cls, recipe: Any) -> DetectionSettings:
        from visionzoo.tasks.detection_metrics import parse_tiou

        check_fusion(recipe.class_top_k, recipe.fusion, recipe.max_detections)
        classes = load_classes(recipe.classes) if recipe.classes not in ("", "auto") else None
        thresholds = parse_tiou(recipe.detection_tiou)
        return cls(classes, recipe.class_top_k, recipe.fusion, recipe.max_detections, thresholds, recipe.classes)

    def score(
        self, proposals: Mapping[str, list[dict[str, Any]]], truth: Mapping[str, tuple[Any, list[str]]]
    ) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
        """(mAP metrics in percent, detections) of the proposals against `truth`: each evaluated video's
        (segments in seconds, labels), as the evaluation items carry them."""
        from visionzoo.tasks.detection_metrics import detection_table, evaluate_detections, summary, truth_of

        if self.classes is None:
            raise VisionZooError(f"--classes {self.source}: no classes file ('auto' is resolved by train and eval)")
        detections = fuse(proposals, self.classes, self.top_k, self.fusion, self.max_per_video)
        table = detection_table(detections, self.source)
        return summary(evaluate_detections(truth_of(truth), table, self.tiou_thresholds)), detections
