"""BMN on long videos (THUMOS14): sliding windows of T snippets, proposals merged back per video.

Training is BMN's on each window (the same targets, loss and model as `ProposalTask`): a window's instances
are those more than `window_ioa` inside it, as fractions of the window. Evaluation post-processes each window
as BMN does (candidate scores, BMN's Soft-NMS, top 100), maps its proposals to video seconds (window start +
fraction x window span, clipped to the video), merges all windows of a video and runs Soft-NMS again over the
merged set (`postprocess.merge_soft_nms`, as G-TAD and OpenTAD do), then scores AR@AN and, with `classes`,
detection mAP at the THUMOS14 thresholds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from visionzoo.data.builtin import resolve_data
from visionzoo.data.thumos14 import SnippetWindows, WindowRecord, load_long_videos
from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import WindowedProposalRecipe
from visionzoo.tasks.base import Batch, EvalResult, Gather
from visionzoo.tasks.postprocess import SoftNMSSettings, merge_soft_nms, post_process, score_candidates, video_id
from visionzoo.tasks.proposals import ProposalTask


def window_proposals(found: list[dict[str, Any]], record: WindowRecord) -> np.ndarray:
    """[n, 3] (start, end, score) in video seconds of one window's proposals (seconds of the window span)."""
    rows = np.array([[*p["segment"], p["score"]] for p in found], dtype=np.float64).reshape(-1, 3)
    rows[:, :2] = (rows[:, :2] + record.offset_second).clip(0.0, record.video.duration_second)
    return rows


def proposals_of_windows(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], windows: list[WindowRecord], settings: SoftNMSSettings
) -> list[np.ndarray]:
    """Each window's proposals in video seconds from BMN's (confidence map, start, end) of the windows' batch."""
    conf_map, start, end = outputs
    spans = [window.span_second for window in windows]
    found = post_process(score_candidates(start, end, conf_map), spans, start.shape[1], settings)
    return [window_proposals(items, window) for items, window in zip(found, windows, strict=True)]


def merge_video(windows: list[np.ndarray], alpha: float, top_k: int) -> list[dict[str, Any]]:
    """A video's proposals from all its windows, Soft-NMS'd together: the proposals JSON entries, best first."""
    merged = merge_soft_nms(np.concatenate(windows), alpha, top_k)
    return [{"score": float(score), "segment": [float(start), float(end)]} for start, end, score in merged]


class WindowedProposalTask(ProposalTask):
    """Batches are ProposalTask's, with WindowRecords: (features [B, D, T], gt_iou_map, gt_start, gt_end, windows)."""

    recipe: WindowedProposalRecipe

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        r = self.recipe
        if r.data_format != "thumos14":
            raise VisionZooError(f"--data-format {r.data_format}: the windowed proposals task reads thumos14")
        root = resolve_data(r.data, r.data_format, feat_dim=r.feat_dim)
        train, val = (
            load_long_videos(root, subset, r.feat_dim, r.video_info, r.video_anno, r.feature_dir, r.snippet_frames)
            for subset in (r.train_subset, r.eval_subset)
        )
        size = r.temporal_scale
        return (
            SnippetWindows(train, size, r.window_overlap_train, r.window_ioa, drop_empty=True, feat_dim=r.feat_dim),
            SnippetWindows(val, size, r.window_overlap_eval, r.window_ioa, drop_empty=False, feat_dim=r.feat_dim),
        )

    def eval_step(self, model: nn.Module, batch: Batch) -> None:
        windows: list[WindowRecord] = batch[-1]
        proposals = proposals_of_windows(self.eval_outputs(model, batch), windows, self.settings)
        for window, found in zip(windows, proposals, strict=True):
            video = window.video
            self._eval["videos"].setdefault(video_id(video.name), ([], video.segments, video.labels))[0].append(found)

    def eval_end(self, gather: Gather) -> EvalResult:
        parts = gather(self._eval)
        videos: dict[str, tuple[list[np.ndarray], Any, Any]] = {}
        for part in parts:  # a video's windows may sit on several ranks
            for name, (windows, segments, labels) in part["videos"].items():
                videos.setdefault(name, ([], segments, labels))[0].extend(windows)
        alpha, top_k = self.recipe.merge_soft_nms_alpha, self.recipe.merge_max_proposals
        results = {name: merge_video(windows, alpha, top_k) for name, (windows, _, _) in videos.items()}
        return self.score(parts, results, videos)
