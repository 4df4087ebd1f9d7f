"""BMN post-processing: candidate scores, Soft-NMS, proposals in seconds, and the proposals JSON format.

Everything follows JJBOY/BMN a92c1d7 (`main.py BMN_inference`, `post_processing.py`) to the bit, vectorised
instead of looped:
- candidates: the T (T - 1) / 2 cells [s, e] with s <= e <= T-2 (proposal [s/T, (e+1)/T]), no boundary-peak
  filter, score = start[s] * end[e+1] * cls[s, e] * reg[s, e] in float32, as the reference's numpy float32.
- Soft-NMS in float64 on the scores sorted by score (stable sort; the reference's pandas quicksort leaves
  the order of equal scores unspecified), width-adaptive threshold, stops at 101 kept or 1 left.
- seconds from (duration_frame // 16 * 16) / duration_frame * duration_second, not the label-side duration
  (16: the snippet length; features of another snippet length use theirs).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
import torch
from pydantic import Field, StringConstraints

from visionzoo.data.activitynet import MAX_ITEMS, MAX_NAME, Name, Segment, segment_faults
from visionzoo.errors import VisionZooError
from visionzoo.files import Schema, read_json, validate

logger = logging.getLogger(__name__)

FACTOR_ROWS_PER_CHUNK = 512  # rows of the Soft-NMS decay table built at once (bounds the temporaries)


@dataclass(frozen=True)
class SoftNMSSettings:
    """How candidates become proposals; the names are the recipe's fields and the model card's keys."""

    soft_nms_alpha: float = 0.4  # decay exp(-iou^2 / alpha)
    soft_nms_low_threshold: float = 0.5  # the width-adaptive IoU threshold runs from low ...
    soft_nms_high_threshold: float = 0.9  # ... (zero-width boxes) to high (whole-video boxes)
    max_proposals: int = 100  # kept per video

    @classmethod
    def of(cls, source: Any) -> SoftNMSSettings:
        """The settings of a recipe (its fields) or of a model card's `postprocessing` dict."""
        get = source.get if isinstance(source, Mapping) else lambda name, default: getattr(source, name, default)
        return cls(**{name: get(name, default) for name, default in cls().__dict__.items()})


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
    """`decay_factors` of the candidate grid, shared by every video ([n, n] float64), built once per process."""
    segments = candidate_segments(temporal_scale)
    table = np.empty((len(segments), len(segments)))
    for begin in range(0, len(segments), FACTOR_ROWS_PER_CHUNK):
        boxes = segments[begin : begin + FACTOR_ROWS_PER_CHUNK]
        table[begin : begin + len(boxes)] = _decay(
            boxes[:, :1], boxes[:, 1:], segments[:, 0], segments[:, 1], alpha, low, high
        )
    table.flags.writeable = False
    return table


def soft_nms_select(
    scores: np.ndarray, factors: np.ndarray | Callable[[np.ndarray], np.ndarray], top_k: int = 101
) -> tuple[np.ndarray, np.ndarray]:
    """Indices [V, top_k] (-1 = none) and scores [V, top_k] (NaN = none) of the kept candidates, in kept order.

    `scores` [V, n] float64, NaN for absent candidates; `factors` from `decay_factors`, [n, n] shared or
    [V, n, n], or a function of the kept indices [V] giving their rows [V, n] (many candidates: no n x n
    table). Each step keeps the highest remaining score (of equal ones, the first in the score-sorted order,
    as `list.index(max(...))` on the reference's sorted list), then multiplies every other remaining score by
    its row of `factors`. As the reference: a video with one candidate keeps it without NMS; with more, the
    loop stops once `top_k` are kept or one is left (which is never kept).
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
    if not callable(factors):
        table = factors
        factors = (lambda best: table[best]) if table.ndim == 2 else (lambda best: table[rows, best])
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
        current *= factors(best)
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


def merge_soft_nms(proposals: np.ndarray, alpha: float = 0.3, top_k: int = 200) -> np.ndarray:
    """[m, 3] (start, end, score) best first: one video's proposals of all its windows, Soft-NMS'd together.

    Decay exp(-iou^2 / alpha) at any overlap (OpenTAD's Gaussian Soft-NMS over the merged windows, sigma 0.3,
    200 kept), the selection loop of `soft_nms_select`; decay rows are computed per kept proposal, so a long
    video's thousands of candidates need no n x n table.
    """
    proposals = np.asarray(proposals, dtype=np.float64).reshape(-1, 3)
    start, end = proposals[:, 0], proposals[:, 1]

    def rows(best: np.ndarray) -> np.ndarray:
        return _decay(start[best, None], end[best, None], start, end, alpha, 0.0, 0.0)

    kept, kept_scores = soft_nms_select(proposals[None, :, 2], rows, top_k)
    chosen = kept[0] >= 0
    return top_proposals(proposals[kept[0, chosen], :2], kept_scores[0, chosen], top_k)


def reference_duration(duration_second: float, duration_frame: int, snippet_frames: int = 16) -> float:
    """The seconds post-processing multiplies by: the frames a snippet grid covers (not feature_frame). The
    reference's grid is 16 frames; `visionzoo features` of another snippet length cover frames // s * s."""
    return float(duration_frame // snippet_frames * snippet_frames) / duration_frame * duration_second


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
    settings: SoftNMSSettings = SoftNMSSettings(),
) -> list[list[dict[str, Any]]]:
    """Candidate scores [V, n] (from `score_candidates`) -> each video's top proposals in seconds (JSON entries)."""
    scores = torch.as_tensor(scores).detach().cpu().double().numpy()
    segments = candidate_segments(temporal_scale)
    factors = grid_decay_factors(
        temporal_scale, settings.soft_nms_alpha, settings.soft_nms_low_threshold, settings.soft_nms_high_threshold
    )
    kept, kept_scores = soft_nms_select(scores, factors)
    results = []
    for v, duration in enumerate(durations):
        chosen = kept[v] >= 0
        proposals = top_proposals(segments[kept[v, chosen]], kept_scores[v, chosen], settings.max_proposals)
        results.append(to_seconds(proposals, duration))
    return results


def video_id(name: str) -> str:
    """ActivityNet ids are YouTube ids; BSN's files prefix them with "v_", the result files do not."""
    return name[2:] if name.startswith("v_") else name


def proposals_json(results: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"version": "VERSION 1.3", "results": dict(results), "external_data": {}}


def write_results(path: str | Path, results: Mapping[str, list[dict[str, Any]]]) -> Path:
    """An ActivityNet result file, written atomically: proposals, detections and video classes share its layout."""
    from visionzoo.files import write_text

    path = Path(path)
    write_text(path, json.dumps(proposals_json(results)))
    return path


write_proposals = write_results  # the name the proposal commands know it by


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


# ------------------------------------------------------------------------------------------- result files
# One schema for the three ActivityNet result files (proposals, detections, video classes): `results` maps a
# video to its entries; `version` and `external_data` are written but not required.

Label = Annotated[str, StringConstraints(max_length=MAX_NAME)]


class Proposal(Schema):
    segment: Segment
    score: float


class Detection(Proposal):
    label: Label


class VideoClass(Schema):
    label: Label
    score: Annotated[float, Field(allow_inf_nan=False)]


Item = TypeVar("Item", Proposal, Detection, VideoClass)


class ResultFile(Schema, Generic[Item]):
    results: Annotated[dict[Name, Annotated[list[Item], Field(max_length=MAX_ITEMS)]], Field(max_length=MAX_ITEMS)]


def read_results(path: Path, what: str, item: type[Item]) -> dict[str, list[Item]]:
    """The `results` of an ActivityNet result file, each entry validated as `item`."""
    return read_json(path, f"{what} file", ResultFile[item]).results


def validate_results(results: Mapping[str, Any], source: str, what: str, item: type[Item]) -> dict[str, list[Item]]:
    """`results` made in memory (or read), as `read_results` returns them."""
    return validate(ResultFile[item], {"results": results}, source, what).results


def scored_segments(source: str, results: Mapping[str, list[Proposal]]) -> dict[str, np.ndarray]:
    """[n, 3] (start, end, score) per video, in file order. A non-finite number has no meaning in the toolkit
    (its tIoU and ranking turn it into NaN) and is refused; reversed segments are kept, as the toolkit scores
    them (a tIoU of 0), with one warning giving their count."""
    arrays = {
        name: np.asarray([[*p.segment, p.score] for p in items], dtype=np.float64).reshape(-1, 3)
        for name, items in results.items()
    }
    reversed_count = 0
    for name, array in arrays.items():
        reversed_, infinite = segment_faults(array)
        if infinite:
            k = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
            raise VisionZooError(
                f"{source}: results.{name}[{k}]: segment and score must be finite numbers, got {array[k].tolist()}"
            )
        reversed_count += reversed_
    if reversed_count:
        logger.warning("%s: %d segments end before they start; kept, as the ActivityNet toolkit scores them (tIoU 0)",
                       source, reversed_count)  # fmt: skip
    return arrays


def load_proposals(path: str | Path) -> dict[str, np.ndarray]:
    """[n, 3] (start, end, score) per video of an ActivityNet proposals JSON, in file order."""
    return scored_segments(str(path), read_results(Path(path), "proposals", Proposal))
