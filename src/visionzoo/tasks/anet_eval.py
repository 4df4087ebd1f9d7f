"""BMN post-processing (candidate scores, Soft-NMS, proposals JSON) and the ActivityNet AR@AN evaluation.

Everything follows JJBOY/BMN a92c1d7 (`main.py BMN_inference`, `post_processing.py`) and the ActivityNet
challenge toolkit it ships (`Evaluation/eval_proposal.py`) to the bit, vectorised instead of looped:
- candidates: the 4,950 cells [s, e] with s <= e <= T-2 (proposal [s/T, (e+1)/T]), no boundary-peak filter,
  score = start[s] * end[e+1] * cls[s, e] * reg[s, e] in float32, as the reference's numpy float32 scalars.
- Soft-NMS in float64 on the scores sorted by score (stable sort; the reference's pandas quicksort leaves
  the order of equal scores unspecified), width-adaptive threshold, stops at 101 kept or 1 left.
- seconds from (duration_frame // 16 * 16) / duration_frame * duration_second, not the label-side duration.
- AR@AN exactly as `average_recall_vs_avg_nr_proposals`, except that a ground-truth video without proposals
  counts as finding nothing (the toolkit raises KeyError there).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionzoo.errors import VisionZooError

TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
AR_AT = (1, 5, 10, 100)
FACTOR_ROWS_PER_CHUNK = 512  # rows of the Soft-NMS decay table built at once (bounds the temporaries)

# --------------------------------------------------------------------------------------------- candidates


def candidate_cells(temporal_scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start index, end cell) of the reference's candidates, in its loop order (start outer, end inner)."""
    cells = torch.triu_indices(temporal_scale - 1, temporal_scale - 1)
    return cells[0], cells[1]


def candidate_segments(temporal_scale: int) -> np.ndarray:
    """[n, 2] float64 (xmin, xmax) = (s / T, (e + 1) / T) of the candidates, n = T (T - 1) / 2."""
    start, end = (index.numpy().astype(np.float64) for index in candidate_cells(temporal_scale))
    return np.stack([start / temporal_scale, (end + 1) / temporal_scale], axis=1)


def score_candidates(start: torch.Tensor, end: torch.Tensor, conf_map: torch.Tensor) -> torch.Tensor:
    """[V, n] float32 candidate scores from start/end [V, T] and the [V, 2, T, T] map (0: reg, 1: cls).

    The final reference scores every pair, without the start/end peak rule of its 2019 version and of
    mmaction2; proposals ending at 1.0 (end cell T-1) are trained but never proposed.
    """
    start_index, end_cell = candidate_cells(start.shape[1])
    start_index, end_cell = start_index.to(start.device), end_cell.to(start.device)
    conf_map = conf_map.float()
    reg, cls = conf_map[:, 0, start_index, end_cell], conf_map[:, 1, start_index, end_cell]
    return start.float()[:, start_index] * end.float()[:, end_cell + 1] * cls * reg


# ---------------------------------------------------------------------------------------------- Soft-NMS


def _decay(box_start, box_end, start, end, alpha: float, low: float, high: float) -> np.ndarray:
    """exp(-iou^2 / alpha) where iou > low + (high - low) * box width, else exactly 1 (broadcast box x candidate).

    The reference's `iou_with_anchors` operations in its order, so a product with these factors equals its
    in-place update of the remaining scores.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        inter = np.maximum(np.minimum(end, box_end) - np.maximum(start, box_start), 0.0)
        iou = inter / ((end - start) - inter + box_end - box_start)
        decay = iou > low + (high - low) * (box_end - box_start)
    return np.where(decay, np.exp(-np.square(np.where(decay, iou, 0.0)) / alpha), 1.0)


def decay_factors(segments: np.ndarray, alpha: float, low: float, high: float) -> np.ndarray:
    """[..., n, n] float64 for segments [..., n, 2]: row b multiplies the scores when candidate b is kept."""
    boxes, candidates = segments[..., :, None, :], segments[..., None, :, :]
    return _decay(boxes[..., 0], boxes[..., 1], candidates[..., 0], candidates[..., 1], alpha, low, high)


@lru_cache(maxsize=2)
def grid_decay_factors(temporal_scale: int, alpha: float, low: float, high: float) -> np.ndarray:
    """`decay_factors` of the candidate grid, shared by every video (196 MB at T=100), built once per process."""
    segments = candidate_segments(temporal_scale)
    table = np.empty((len(segments), len(segments)))
    for begin in range(0, len(segments), FACTOR_ROWS_PER_CHUNK):
        boxes = segments[begin : begin + FACTOR_ROWS_PER_CHUNK]
        table[begin : begin + len(boxes)] = _decay(
            boxes[:, :1], boxes[:, 1:], segments[:, 0], segments[:, 1], alpha, low, high
        )
    table.flags.writeable = False
    return table


def soft_nms_select(scores: np.ndarray, factors: np.ndarray, top_k: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Indices [V, top_k] (-1 = none) and scores [V, top_k] (NaN = none) of the kept candidates, in kept order.

    `scores` [V, n] float64, NaN for absent candidates; `factors` from `decay_factors`, [n, n] shared or
    [V, n, n]. Each step keeps the highest remaining score (of equal ones, the first in the score-sorted
    order, as `list.index(max(...))` on the reference's sorted list), then multiplies every other remaining
    score by its row of `factors`. As the reference: a video with one candidate keeps it without NMS; with
    more, the loop stops once `top_k` are kept or one is left (which is never kept).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    videos, n = scores.shape
    rows = np.arange(videos)
    present = ~np.isnan(scores)
    count = present.sum(axis=1)
    current = np.where(present, scores, -np.inf)
    sorted_position = np.empty((videos, n), dtype=np.int64)
    sorted_position[rows[:, None], np.argsort(-current, axis=1, kind="stable")] = np.arange(n)
    kept = np.full((videos, top_k), -1, dtype=np.int64)
    kept_scores = np.full((videos, top_k), np.nan)
    for step in range(min(top_k, n)):
        active = count - step > 1
        if not active.any():
            break
        best = current.argmax(axis=1)
        best_score = current[rows, best]
        for v in np.flatnonzero(active & (np.count_nonzero(current == best_score[:, None], axis=1) > 1)):
            tied = np.flatnonzero(current[v] == best_score[v])
            best[v] = tied[np.argmin(sorted_position[v, tied])]
        kept[active, step], kept_scores[active, step] = best[active], best_score[active]
        current *= factors[best] if factors.ndim == 2 else factors[rows, best]
        current[rows, best] = -np.inf
    single = count == 1
    kept[single, 0] = present[single].argmax(axis=1)
    kept_scores[single, 0] = scores[single, kept[single, 0]]
    return kept, kept_scores


def soft_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    alpha: float = 0.4,
    low: float = 0.5,
    high: float = 0.9,
    top_k: int = 101,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference Soft-NMS of candidates `segments` ([n, 2] shared by all videos, or [V, n, 2]), `scores` [V, n].

    Returns the kept (segments [V, top_k, 2], scores [V, top_k]) in the order they were kept, NaN-padded.
    """
    segments = np.asarray(segments, dtype=np.float64)
    kept, kept_scores = soft_nms_select(scores, decay_factors(segments, alpha, low, high), top_k)
    rows = np.arange(len(kept))[:, None] if segments.ndim == 3 else slice(None)
    kept_segments = np.where(kept[..., None] >= 0, segments[rows, np.maximum(kept, 0)], np.nan)
    return kept_segments, kept_scores


def top_proposals(segments: np.ndarray, scores: np.ndarray, max_proposals: int = 100) -> np.ndarray:
    """[m, 3] (xmin, xmax, score) of one video's kept proposals, best first (stable), at most `max_proposals`."""
    present = ~np.isnan(scores)
    segments, scores = segments[present], scores[present]
    order = np.argsort(-scores, kind="stable")[:max_proposals]
    return np.concatenate([segments[order], scores[order, None]], axis=1)


def reference_duration(duration_second: float, duration_frame: int) -> float:
    """The seconds post-processing multiplies by: the frames a 16-frame snippet grid covers (not feature_frame)."""
    return float(duration_frame // 16 * 16) / duration_frame * duration_second


def to_seconds(proposals: np.ndarray, duration: float) -> list[dict[str, Any]]:
    """[m, 3] normalised proposals -> the JSON entries: segment [max(0, xmin) d, min(1, xmax) d]."""
    return [
        {"score": float(score), "segment": [max(0.0, float(xmin)) * duration, min(1.0, float(xmax)) * duration]}
        for xmin, xmax, score in proposals
    ]


def post_process(
    scores: torch.Tensor | np.ndarray,
    durations: Sequence[float],
    temporal_scale: int,
    alpha: float = 0.4,
    low: float = 0.5,
    high: float = 0.9,
    max_proposals: int = 100,
) -> list[list[dict[str, Any]]]:
    """Candidate scores [V, n] (from `score_candidates`) -> each video's top proposals in seconds (JSON entries)."""
    scores = torch.as_tensor(scores).detach().cpu().double().numpy()
    segments = candidate_segments(temporal_scale)
    kept, kept_scores = soft_nms_select(scores, grid_decay_factors(temporal_scale, alpha, low, high))
    results = []
    for v, duration in enumerate(durations):
        chosen = kept[v] >= 0
        proposals = top_proposals(segments[kept[v, chosen]], kept_scores[v, chosen], max_proposals)
        results.append(to_seconds(proposals, duration))
    return results


def video_id(name: str) -> str:
    """ActivityNet ids are YouTube ids; BSN's files prefix them with "v_", the result files do not."""
    return name[2:] if name.startswith("v_") else name


def proposals_json(results: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"version": "VERSION 1.3", "results": dict(results), "external_data": {}}


def write_proposals(path: str | Path, results: Mapping[str, list[dict[str, Any]]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(proposals_json(results)))
    return path


def sliding_window_proposals(
    duration: float, scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125), max_proposals: int = 100
) -> list[dict[str, Any]]:
    """Baseline: windows of each scale (fraction of the video) at half-window strides, coarse scales first.

    The score only fixes that order (1 for the first window, falling linearly), so the AR@AN it reaches is
    what knowing nothing but the duration buys.
    """
    windows = []
    for scale in scales:
        starts = np.arange(0.0, 1.0 - scale + 1e-9, scale / 2)
        windows += [(start, start + scale) for start in starts]
    windows = windows[:max_proposals]
    return [
        {"score": 1.0 - rank / len(windows), "segment": [start * duration, min(1.0, end) * duration]}
        for rank, (start, end) in enumerate(windows)
    ]


# --------------------------------------------------------------------------------------------- evaluation


@dataclass
class GroundTruth:
    """Validation instances in seconds per video id (without "v_"), and each video's duration in seconds."""

    segments: dict[str, np.ndarray] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise VisionZooError(f"{path}: cannot read the {what} ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VisionZooError(f"{path}: the {what} is not valid JSON ({err})") from None


def _segment_array(path: Path, video: str, items: Any, with_score: bool) -> np.ndarray:
    """[k, 2] segments (or [k, 3] with the score) of one video's entries, checked."""
    rows = []
    for k, item in enumerate(items if isinstance(items, list) else [None]):
        segment = item.get("segment") if isinstance(item, dict) else None
        score = item.get("score") if isinstance(item, dict) and with_score else 0.0
        values = [*segment, score] if isinstance(segment, list) and len(segment) == 2 else None
        if values is None or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in values):
            need = '{"segment": [start, end], "score": s}' if with_score else '{"segment": [start, end], ...}'
            raise VisionZooError(f"{path}: video {video}: entry {k} must be {need}, got {item!r}")
        rows.append(values if with_score else values[:2])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3 if with_score else 2)


def load_ground_truth(path: str | Path, subset: str = "validation") -> GroundTruth:
    """GT of `subset` from an ActivityNet database JSON (`database`/`taxonomy`/`version`) or a BSN directory.

    The directory form (`video_info_new.csv` + `anet_anno_action.json`, as JJBOY ships) selects the CSV's
    `subset` rows; it is what the reference's `activity_net_1_3_new.json` holds for validation (4,728 videos,
    7,293 instances).
    """
    path = Path(path)
    truth = GroundTruth()
    if path.is_dir():
        from visionzoo.data.activitynet import load_annotations

        for video in load_annotations(path):
            if video.subset == subset:
                truth.segments[video_id(video.name)] = video.segments
                truth.durations[video_id(video.name)] = video.duration_second
        return truth
    data = _read_json(path, "ground truth")
    if not isinstance(data, dict) or not all(key in data for key in ("database", "taxonomy", "version")):
        raise VisionZooError(
            f"{path}: not an ActivityNet ground truth (needs 'database', 'taxonomy', 'version'), "
            "nor a directory with video_info_new.csv and anet_anno_action.json"
        )
    for name, entry in data["database"].items():
        if not isinstance(entry, dict):
            raise VisionZooError(f"{path}: database entry {name!r} is not an object")
        if entry.get("subset") == subset:
            truth.segments[name] = _segment_array(path, name, entry.get("annotations"), with_score=False)
            truth.durations[name] = float(entry.get("duration", math.nan))
    return truth


def load_proposals(path: str | Path) -> dict[str, np.ndarray]:
    """[n, 3] (start, end, score) per video of an ActivityNet proposals JSON, in file order."""
    path = Path(path)
    data = _read_json(path, "proposals file")
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise VisionZooError(f"{path}: not an ActivityNet proposals file (needs 'results': {{video: [...]}})")
    return {name: _segment_array(path, name, items, with_score=True) for name, items in data["results"].items()}


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
        warnings.warn(
            f"{missing} of {len(videos)} ground-truth videos have no proposals; counted as finding nothing",
            stacklevel=2,
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_eval_proposals(ground_truth: Path, proposals: Path, plot: Path | None = None) -> dict[str, Any]:
    """`visionzoo eval-proposals`: metrics of a proposals JSON against a GT file or BSN directory (no curve)."""
    metrics = evaluate_proposals(load_ground_truth(ground_truth).segments, load_proposals(proposals))
    curve = metrics.pop("curve")
    if plot is not None:
        metrics["plot"] = str(plot_ar_an(curve, plot))
    return metrics
