"""The ActivityNet proposal metrics: ground truth, AR@AN and AUC as the challenge toolkit computes them, plots.

Numbers equal `Evaluation/eval_proposal.py` of the ActivityNet toolkit that JJBOY/BMN ships, vectorised,
except that a ground-truth video without proposals counts as finding nothing (the toolkit raises KeyError).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.data.activitynet import Database, segment_array, segment_faults
from visionzoo.errors import VisionZooError
from visionzoo.files import read_json, save_figure
from visionzoo.tasks.postprocess import load_proposals, video_id

logger = logging.getLogger(__name__)

TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
AR_AT = (1, 5, 10, 100)


@dataclass
class GroundTruth:
    """Instances in seconds per video id (without "v_"), their labels, and each video's duration in seconds.

    Videos keep the order of the source and labels the order of their instances: the detection metric numbers
    classes by first appearance in this order, as the toolkit does.
    """

    segments: dict[str, np.ndarray] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str | None]] = field(default_factory=dict)

    def add(self, name: str, segments: np.ndarray, labels: list[str | None], duration: float = math.nan) -> None:
        self.segments[name], self.labels[name], self.durations[name] = segments, labels, duration


def load_ground_truth(path: str | Path, subset: str = "validation") -> GroundTruth:
    """GT of `subset` from an ActivityNet database JSON (`database`/`taxonomy`/`version`), a BSN directory or a
    folder of THUMOS14 per-class files.

    The BSN form (`video_info_new.csv` + `anet_anno_action.json`, as JJBOY ships) selects the CSV's `subset`
    rows; it is what the reference's `activity_net_1_3_new.json` holds for validation (4,728 videos, 7,293
    instances). The THUMOS14 form (`<Class>_val.txt` / `<Class>_test.txt`) is read by `data.thumos14`.
    """
    path = Path(path)
    truth = GroundTruth()
    if path.is_dir() and not (path / "video_info_new.csv").is_file():
        from visionzoo.data.thumos14 import load_class_files

        for name, (segments, labels) in load_class_files(path, subset).items():
            truth.add(name, segments, labels)
        return truth
    if path.is_dir():
        from visionzoo.data.activitynet import load_annotations

        for video in load_annotations(path):
            if video.subset == subset:
                truth.add(video_id(video.name), video.segments, list(video.labels), video.duration_second)
        return truth
    if not path.is_file():
        raise VisionZooError(
            f"{path}: not an ActivityNet ground truth JSON, nor a directory with video_info_new.csv and "
            "anet_anno_action.json"
        )
    database = read_json(path, "ground truth", Database).database
    reversed_count = 0
    for name, entry in database.items():
        if entry.subset == subset:
            segments = segment_array(entry.annotations)
            reversed_, infinite = segment_faults(segments)
            if infinite:
                k = int(np.flatnonzero(~np.isfinite(segments).all(axis=1))[0])
                raise VisionZooError(f"{path}: database.{name}.annotations[{k}].segment: must be finite, "
                                     f"got {segments[k].tolist()}")  # fmt: skip
            reversed_count += reversed_
            labels = [item.label for item in entry.annotations]
            truth.add(name, segments, labels, math.nan if entry.duration is None else entry.duration)
    if reversed_count:
        logger.warning("%s: %d ground-truth segments end before they start; kept, as the ActivityNet toolkit "
                       "reads them", path, reversed_count)  # fmt: skip
    return truth


def evaluate_proposals(
    ground_truth: Mapping[str, np.ndarray],
    proposals: Mapping[str, np.ndarray],
    max_avg_nr_proposals: float | None = 100,
    tiou_thresholds: np.ndarray = TIOU_THRESHOLDS,
) -> dict[str, Any]:
    """AR@1/5/10/100 and AUC (percent) of `proposals` ([n, 3] start, end, score per video) against GT [k, 2].

    Numbers equal `average_recall_vs_avg_nr_proposals` + `ANETproposal.evaluate` of the ActivityNet toolkit:
    per-video truncation to int(n * ratio) with ratio = max_avg * videos / all proposals of the file,
    instance-weighted recall at each percentage of the kept proposals (`int` truncation quirk included),
    AUC = trapezoid(avg recall, proposals per video) / last x. `curve` holds the arrays for `plot_ar_an`.
    """
    videos = [name for name, segments in ground_truth.items() if len(segments)]
    if not videos:
        raise VisionZooError("evaluate_proposals: the ground truth has no annotated video")
    total_in_file = sum(len(p) for p in proposals.values())
    if total_in_file == 0:
        raise VisionZooError("evaluate_proposals: the proposals hold no segment at all")
    if not max_avg_nr_proposals:
        max_avg_nr_proposals = float(total_in_file) / len(videos)
    ratio = max_avg_nr_proposals * float(len(videos)) / total_in_file
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)

    first_hits, kept_counts, missing, total_kept = [], [], 0, 0
    for name in videos:
        truth = np.asarray(ground_truth[name], dtype=np.float64).reshape(-1, 2)
        found = proposals.get(name)
        if found is None or len(found) == 0:
            missing += 1
            first_hits.append(np.zeros((len(thresholds), len(truth)), dtype=np.int64))
            kept_counts.append(np.zeros(len(truth), dtype=np.int64))  # a cut-off of 0 never matches
            continue
        found = np.asarray(found, dtype=np.float64)
        order = np.argsort(found[:, 2])[::-1]  # pandas Series.argsort()[::-1]: numpy quicksort, reversed
        kept = min(int(found.shape[0] * ratio), found.shape[0])
        total_kept += kept
        segments = found[order][:kept, :2]
        # segment_iou(target=proposal, candidates=GT) with the toolkit's operation order
        start, end = (
            np.maximum(segments[None, :, 0], truth[:, None, 0]),
            np.minimum(segments[None, :, 1], truth[:, None, 1]),
        )
        inter = (end - start).clip(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            tiou = inter / ((truth[:, 1:] - truth[:, :1]) + (segments[None, :, 1] - segments[None, :, 0]) - inter)
        hits = tiou[None] >= thresholds[:, None, None]  # [thresholds, GT, kept]
        first_hits.append(np.where(hits.any(axis=2), hits.argmax(axis=2), kept))
        kept_counts.append(np.full(len(truth), kept, dtype=np.int64))
    if missing:
        logger.warning(
            "%d of %d ground-truth videos have no proposals; counted as finding nothing", missing, len(videos)
        )
    if total_kept == 0:
        raise VisionZooError("evaluate_proposals: no ground-truth video has proposals")

    pcn = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(len(videos)) / total_kept)
    first_hit = np.concatenate(first_hits, axis=1)  # [thresholds, instances]
    kept = np.concatenate(kept_counts)
    cutoffs = np.minimum((kept[:, None] * pcn[None]).astype(np.int64), kept[:, None])  # [instances, 100]
    matches = (first_hit[:, :, None] < cutoffs[None]).sum(axis=1)  # [thresholds, 100]
    recall = matches.astype(np.float64) / float(first_hit.shape[1])
    avg_recall = recall.mean(axis=0)
    proposals_per_video = pcn * (float(total_kept) / len(videos))
    area = np.trapezoid(avg_recall, proposals_per_video)
    metrics: dict[str, Any] = {f"AR@{n}": 100.0 * float(np.mean(recall[:, n - 1])) for n in AR_AT}
    metrics["AUC"] = 100.0 * float(area) / proposals_per_video[-1]
    metrics |= {"videos": len(videos), "instances": int(first_hit.shape[1]), "videos_without_proposals": missing}
    metrics["curve"] = {
        "proposals_per_video": proposals_per_video.tolist(),
        "average_recall": avg_recall.tolist(),
        "recall": recall.tolist(),
        "tiou_thresholds": thresholds.tolist(),
    }
    return metrics


def plot_ar_an(curve: Mapping[str, Any], path: str | Path, title: str = "AR-AN") -> Path:
    """The AR vs average-number-of-proposals curve (average and per tIoU threshold) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(curve["proposals_per_video"])
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    recall = np.asarray(curve["recall"])
    for threshold, values in zip(curve["tiou_thresholds"], recall, strict=True):
        ax.plot(x, 100 * values, linewidth=0.8, alpha=0.6, label=f"tIoU {threshold:.2f}")
    average = 100 * np.asarray(curve["average_recall"])
    ax.plot(x, average, color="black", linewidth=2.2, label="average")
    area = 100.0 * float(np.trapezoid(np.asarray(curve["average_recall"]), x)) / x[-1]
    ax.set(xlabel="average number of proposals per video", ylabel="average recall (%)", xlim=(0, x[-1]), ylim=(0, 100))
    ax.set_title(f"{title}: AR@100 {average[-1]:.2f}, AUC {area:.2f}")
    ax.grid(visible=True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.tight_layout()
    save_figure(Path(path), fig)
    plt.close(fig)
    return Path(path)


def evaluate_proposals_file(ground_truth: Path, proposals: Path, plot: Path | None = None) -> dict[str, Any]:
    """`visionzoo eval-proposals`: metrics of a proposals JSON against a GT file or BSN directory (no curve)."""
    metrics = evaluate_proposals(load_ground_truth(ground_truth).segments, load_proposals(proposals))
    curve = metrics.pop("curve")
    if plot is not None:
        metrics["plot"] = str(plot_ar_an(curve, plot))
    return metrics
