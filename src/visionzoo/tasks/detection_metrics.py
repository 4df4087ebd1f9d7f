"""Temporal action detection mAP, equal to `Evaluation/eval_detection.py` of the ActivityNet challenge toolkit.

Per class of the ground truth (numbered by first appearance, as the toolkit does): detections ranked by
`np.argsort(score)[::-1]` (the toolkit's order, ties included); each detection is a true positive when an
unmatched ground truth of its video has tIoU >= the threshold (the first in `np.argsort(tiou)[::-1]` order),
else a false positive; AP is the VOC-2011 interpolated area (`interpolated_prec_rec`). mAP per threshold is
the mean over classes, `average_mAP` the mean over thresholds. The toolkit's loop over detections becomes one
step per rank inside (class, video) groups, for all groups at once.

Where the toolkit would crash or go online: blocked videos come from a dead web API with `check_status=True`
(here none are blocked, as `check_status=False`); a detected label that the subset's ground truth lacks is a
KeyError there, here those detections are dropped with a warning (they could only be false positives of a
class that is not scored); a class without detections scores AP 0 with a warning, as the toolkit's last
version does. Detections on videos outside the subset count as false positives, as there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.errors import VisionZooError
from visionzoo.tasks.anet_metrics import GroundTruth, load_ground_truth
from visionzoo.tasks.postprocess import Detection, read_results, scored_segments, validate_results, video_id

logger = logging.getLogger(__name__)

ACTIVITYNET_TIOU = "0.5:0.95:10"
THUMOS_TIOU = "0.3:0.7:5"
MAX_TIOU_THRESHOLDS = 1000  # matching loops over thresholds; the toolkits use 5 or 10


def parse_tiou(text: str) -> np.ndarray:
    """'LO:HI:N' -> np.linspace(LO, HI, N), the thresholds as the toolkit builds them (N = 1: LO alone)."""
    try:
        low, high, count = text.split(":")
        low, high, count = float(low), float(high), int(count)
    except ValueError:
        raise VisionZooError(f"--tiou {text}: expected LO:HI:N, e.g. {ACTIVITYNET_TIOU} or {THUMOS_TIOU}") from None
    if not (0.0 < low <= high <= 1.0 and 1 <= count <= MAX_TIOU_THRESHOLDS):
        raise VisionZooError(f"--tiou {text}: needs 0 < LO <= HI <= 1 and 1 <= N <= {MAX_TIOU_THRESHOLDS}")
    return np.linspace(low, high, count)


def metric_name(threshold: float) -> str:
    return f"mAP@{threshold:.2f}"


# ---------------------------------------------------------------------------------------------- detections


@dataclass
class Detections:
    """Flat detections in file order (the toolkit's prediction table): video ids, [n, 2] seconds, scores, labels."""

    videos: list[str]
    segments: np.ndarray
    scores: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.videos)


def detection_table(results: Mapping[str, Any], source: str) -> Detections:
    """The detections of an ActivityNet `results` object ({video: [{"label", "score", "segment"}]}), checked."""
    found = validate_results(results, source, "detections", Detection)
    return _table(found, scored_segments(source, found))


def _table(found: Mapping[str, list[Detection]], arrays: Mapping[str, np.ndarray]) -> Detections:
    videos = [video_id(name) for name, items in found.items() for _ in items]
    labels = [item.label for items in found.values() for item in items]
    table = np.concatenate(list(arrays.values())) if arrays else np.zeros((0, 3))
    return Detections(videos, table[:, :2], table[:, 2], labels)


def load_detections(path: str | Path) -> Detections:
    """An ActivityNet detection file (`results` per video; `version` and `external_data` are not required)."""
    found = read_results(Path(path), "detections", Detection)
    return _table(found, scored_segments(str(path), found))


# ---------------------------------------------------------------------------------------------- matching


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated AP: the toolkit's `interpolated_prec_rec`, the same operations in the same order."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[changes] - mrec[changes - 1]) * mprec[changes]))


def segment_tiou(detections: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[n, k] tIoU of detections [n, 2] with ground truth [k, 2]: the toolkit's `segment_iou` operations."""
    start = np.maximum(detections[:, None, 0], truth[None, :, 0])
    end = np.minimum(detections[:, None, 1], truth[None, :, 1])
    inter = (end - start).clip(0)
    union = (truth[None, :, 1] - truth[None, :, 0]) + (detections[:, None, 1] - detections[:, None, 0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _match_groups(truth: list[np.ndarray], detections: list[np.ndarray], thresholds: np.ndarray) -> list[np.ndarray]:
    """True positives [thresholds, n_g] of each group's detections (in rank order) against its k ground truths.

    All groups have the same k. Step i takes the i-th detection of every group that has one: at each
    threshold it matches the first ground truth in its tIoU order that is not below the threshold and not yet
    matched. A NaN tIoU (two zero-length segments) sorts first and is never below a threshold, as there.
    """
    counts = np.array([len(d) for d in detections])
    by_size = np.argsort(-counts, kind="stable")  # the groups still active at step i are a prefix
    offsets = np.concatenate([[0], np.cumsum(counts[by_size])[:-1]])
    tiou = np.concatenate([segment_tiou(detections[g], truth[g]) for g in by_size])  # [P, k]
    order = np.argsort(tiou, axis=1)[:, ::-1]  # row by row, as the toolkit's per-detection argsort
    ranked = np.take_along_axis(tiou, order, axis=1)
    matched = np.zeros((len(thresholds), len(by_size), tiou.shape[1]), dtype=bool)
    hits = np.zeros((len(thresholds), len(tiou)), dtype=bool)
    for step in range(int(counts.max(initial=0))):
        active = np.arange(int((counts[by_size] > step).sum()))
        rows = offsets[active] + step
        slots = order[rows]  # [A, k]
        allowed = ~(ranked[rows][None] < thresholds[:, None, None]) & ~matched[:, active[:, None], slots]
        found = allowed.any(axis=2)  # [T, A]
        first = allowed.argmax(axis=2)
        hits[:, rows] = found
        t, a = np.nonzero(found)
        matched[t, active[a], slots[a, first[t, a]]] = True
    starts = dict(zip(by_size.tolist(), offsets.tolist(), strict=True))
    return [hits[:, starts[g] : starts[g] + counts[g]] for g in range(len(detections))]


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _class_index(truth: GroundTruth) -> dict[str, int]:
    index: dict[str, int] = {}
    for name, labels in truth.labels.items():
        for k, label in enumerate(labels):
            if label is None:
                raise VisionZooError(f"ground truth video {name}: instance {k} has no label")
            index.setdefault(label, len(index))
    if not index:
        raise VisionZooError("the ground truth has no instance in this subset")
    return index


def _known_labels(detections: Detections, classes: dict[str, int]) -> np.ndarray:
    """Class index per detection; detections of labels the ground truth lacks are dropped (-1), with a warning."""
    label_index = np.array([classes.get(label, -1) for label in detections.labels], dtype=np.int64)
    unknown = sorted({label for label, c in zip(detections.labels, label_index, strict=True) if c < 0})
    if unknown:
        logger.warning(
            "%d detections of %d label(s) the ground truth lacks were left out (the toolkit stops there): %s",
            int((label_index < 0).sum()), len(unknown), _some(unknown),
        )  # fmt: skip
    return label_index


def _true_positives(
    truth: GroundTruth,
    detections: Detections,
    classes: dict[str, int],
    det_class: np.ndarray,
    rank: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """[thresholds, detections] bool: which detections match an instance, each (class, video) group on its own."""
    videos = {name: v for v, name in enumerate(dict.fromkeys([*truth.labels, *detections.videos]))}
    det_video = np.array([videos[name] for name in detections.videos], dtype=np.int64)
    groups: dict[tuple[int, int], list[np.ndarray]] = {}  # (class, video) -> its instances, in the toolkit's order
    for name, labels in truth.labels.items():
        for label, segment in zip(labels, truth.segments[name], strict=True):
            groups.setdefault((classes[label], videos[name]), []).append(segment)
    by_size: dict[int, list[tuple[tuple[int, int], np.ndarray]]] = {}  # groups by their number of instances
    scored = np.flatnonzero(det_class >= 0)
    keys = det_class[scored] * len(videos) + det_video[scored]
    order = np.lexsort((rank[scored], keys))
    for run in np.split(scored[order], np.flatnonzero(np.diff(keys[order])) + 1):
        key = (int(det_class[run[0]]), int(det_video[run[0]]))
        if key in groups:  # else every detection of the run is a false positive
            by_size.setdefault(len(groups[key]), []).append((key, run))
    hits = np.zeros((len(thresholds), len(detections)), dtype=bool)
    for bucket in by_size.values():
        truth_sets = [np.stack(groups[key]) for key, _ in bucket]
        found = _match_groups(truth_sets, [detections.segments[run] for _, run in bucket], thresholds)
        for (_, run), group_hits in zip(bucket, found, strict=True):
            hits[:, run] = group_hits
    return hits


def evaluate_detections(
    truth: GroundTruth, detections: Detections, tiou_thresholds: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """AP [thresholds, classes], mAP per threshold and average_mAP (fractions, as the toolkit), and the classes."""
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    classes = _class_index(truth)
    if len(detections) == 0:
        raise VisionZooError("the detections file holds no detection")
    det_class = _known_labels(detections, classes)
    ranked = []  # per class: its detections, best first
    rank = np.empty(len(detections), dtype=np.int64)
    for c in range(len(classes)):
        members = np.flatnonzero(det_class == c)
        ranked.append(members[np.argsort(detections.scores[members])[::-1]])
        rank[ranked[-1]] = np.arange(len(members))
    hits = _true_positives(truth, detections, classes, det_class, rank, thresholds)

    positives = np.bincount(
        [classes[label] for labels in truth.labels.values() for label in labels], minlength=len(classes)
    )
    ap = np.zeros((len(thresholds), len(classes)))
    for c, members in enumerate(ranked):
        if len(members):
            tp = hits[:, members].astype(np.float64)
            tp_cumsum, fp_cumsum = np.cumsum(tp, axis=1), np.cumsum(1.0 - tp, axis=1)
            recall, precision = tp_cumsum / float(positives[c]), tp_cumsum / (tp_cumsum + fp_cumsum)
            ap[:, c] = [interpolated_ap(precision[t], recall[t]) for t in range(len(thresholds))]
    empty = [name for name, members in zip(classes, ranked, strict=True) if len(members) == 0]
    if empty:
        logger.warning(
            "%d of %d classes have no detection (AP 0, as the toolkit): %s", len(empty), len(classes), _some(empty)
        )
    mean_ap = ap.mean(axis=1)
    return {
        "ap": ap,
        "mAP": mean_ap,
        "average_mAP": float(mean_ap.mean()),
        "classes": list(classes),
        "tiou_thresholds": thresholds,
        "instances": positives,
        "detections": np.bincount(det_class[det_class >= 0], minlength=len(classes)),
    }


def summary(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """{"mAP@0.50": ..., "average_mAP": ...} in percent."""
    pairs = zip(evaluation["tiou_thresholds"], evaluation["mAP"], strict=True)
    values = {metric_name(t): 100.0 * float(m) for t, m in pairs}
    return values | {"average_mAP": 100.0 * evaluation["average_mAP"]}


def truth_of(videos: Mapping[str, tuple[np.ndarray, Sequence[str]]]) -> GroundTruth:
    """A GroundTruth from {video id: (segments [k, 2] seconds, labels)} (what evaluation items carry)."""
    truth = GroundTruth()
    for name, (segments, labels) in videos.items():
        truth.add(name, np.asarray(segments, dtype=np.float64).reshape(-1, 2), list(labels))
    return truth


# ------------------------------------------------------------------------------------------------ outputs


def write_per_class(path: Path, evaluation: Mapping[str, Any]) -> Path:
    """CSV: class, instances, detections, AP (percent) at each threshold, their mean."""
    from visionzoo.files import write_csv

    names = [metric_name(t).replace("mAP", "AP") for t in evaluation["tiou_thresholds"]]
    rows = []
    for c, name in enumerate(evaluation["classes"]):
        values = 100.0 * evaluation["ap"][:, c]
        row = [name, int(evaluation["instances"][c]), int(evaluation["detections"][c])]
        rows.append(row + [f"{v:.4f}" for v in values] + [f"{values.mean():.4f}"])
    write_csv(Path(path), ["class", "instances", "detections", *names, "average_AP"], rows)
    return Path(path)


def plot_detection(evaluation: Mapping[str, Any], path: Path, title: str = "detection", top: int = 20) -> Path:
    """mAP against the tIoU threshold, and the AP (averaged over thresholds) of the `top` classes with the most
    instances, by name and best first, the other classes' mean as one last bar, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visionzoo.files import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), dpi=110, width_ratios=(2, 3))
    thresholds = evaluation["tiou_thresholds"]
    left.plot(thresholds, 100 * evaluation["mAP"], marker="o")
    left.set(xlabel="tIoU threshold", ylabel="mAP (%)", ylim=(0, 100))
    left.set_title(f"{title}: average mAP {100 * evaluation['average_mAP']:.2f}")
    left.grid(visible=True, alpha=0.3)
    per_class = 100 * evaluation["ap"].mean(axis=0)
    shown = np.argsort(-np.asarray(evaluation["instances"]), kind="stable")[:top]
    shown = shown[np.argsort(-per_class[shown], kind="stable")]
    rest = np.setdiff1d(np.arange(len(per_class)), shown)
    names = [str(evaluation["classes"][c]) for c in shown] + ([f"others ({len(rest)} classes)"] if len(rest) else [])
    values = [*per_class[shown], *([per_class[rest].mean()] if len(rest) else [])]
    bars = right.bar(names, values, color=["C0"] * len(shown) + ["0.6"] * bool(len(rest)))
    right.bar_label(bars, fmt="%.1f", fontsize=7)  # a class at AP 0 has no bar to see
    right.tick_params(axis="x", labelrotation=60, labelsize=8)
    plt.setp(right.get_xticklabels(), ha="right", rotation_mode="anchor")
    most = f"the {len(shown)} with most instances" if len(rest) else "all"
    right.set(title=f"AP per class: {most} of {len(per_class)}, best first", ylabel="AP over thresholds (%)",
              ylim=(0, 100))  # fmt: skip
    fig.tight_layout()
    save_figure(Path(path), fig)
    plt.close(fig)
    return Path(path)


def evaluate_detection_file(
    ground_truth: Path,
    detections: Path,
    tiou: str = ACTIVITYNET_TIOU,
    subset: str = "validation",
    per_class: Path | None = None,
    plot: Path | None = None,
) -> dict[str, float]:
    """`visionzoo eval-detection`: mAP (percent) per threshold and averaged, and the optional CSV and plot."""
    thresholds = parse_tiou(tiou)
    truth = load_ground_truth(ground_truth, subset)
    if not truth.segments:
        raise VisionZooError(f"{ground_truth}: no video of subset {subset!r}")
    evaluation = evaluate_detections(truth, load_detections(detections), thresholds)
    if per_class is not None:
        write_per_class(per_class, evaluation)
    if plot is not None:
        plot_detection(evaluation, plot, title=Path(detections).name)
    return summary(evaluation)
