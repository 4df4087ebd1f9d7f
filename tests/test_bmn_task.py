"""BMN labels, loss, post-processing and AR@AN against literal transcriptions of the reference code.

The oracles below transcribe JJBOY/BMN a92c1d7 (`dataset.py`, `loss_function.py`, `main.py`,
`post_processing.py`) and the ActivityNet toolkit's `eval_proposal.py`, loop for loop. Only what cannot run
here changed: pandas is replaced by lists (with a stable sort where pandas sorts), `.cuda()` is dropped, and
`np.random.rand` becomes `torch.rand` so both sides draw the same numbers from one seed.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numerics import assert_close

import visionzoo.models.bmn  # noqa: F401  (registers "bmn")
from visionzoo.data.activitynet import VideoRecord
from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import ProposalRecipe
from visionzoo.tasks import anet_metrics, postprocess
from visionzoo.tasks.bmn_loss import bmn_loss, bmn_targets, pem_reg_loss
from visionzoo.tasks.proposals import ProposalTask, pad_segments

SHARED_ACTIVITYNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "activitynet"
TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)

# ------------------------------------------------------------------------------------ reference: labels


def ref_ioa_with_anchors(anchors_min, anchors_max, box_min, box_max):
    len_anchors = anchors_max - anchors_min
    int_xmin = np.maximum(anchors_min, box_min)
    int_xmax = np.minimum(anchors_max, box_max)
    inter_len = np.maximum(int_xmax - int_xmin, 0.0)
    scores = np.divide(inter_len, len_anchors)
    return scores


def ref_iou_with_anchors(anchors_min, anchors_max, box_min, box_max):
    len_anchors = anchors_max - anchors_min
    int_xmin = np.maximum(anchors_min, box_min)
    int_xmax = np.minimum(anchors_max, box_max)
    inter_len = np.maximum(int_xmax - int_xmin, 0.0)
    union_len = len_anchors - inter_len + box_max - box_min
    jaccard = np.divide(inter_len, union_len)
    return jaccard


def ref_get_train_label(video_info, temporal_scale):
    temporal_gap = 1.0 / temporal_scale
    anchor_xmin = [temporal_gap * (i - 0.5) for i in range(temporal_scale)]
    anchor_xmax = [temporal_gap * (i + 0.5) for i in range(temporal_scale)]
    video_frame = video_info["duration_frame"]
    video_second = video_info["duration_second"]
    feature_frame = video_info["feature_frame"]
    corrected_second = float(feature_frame) / video_frame * video_second
    video_labels = video_info["annotations"]

    gt_bbox = []
    for j in range(len(video_labels)):
        tmp_info = video_labels[j]
        tmp_start = max(min(1, tmp_info["segment"][0] / corrected_second), 0)
        tmp_end = max(min(1, tmp_info["segment"][1] / corrected_second), 0)
        gt_bbox.append([tmp_start, tmp_end])

    gt_bbox = np.array(gt_bbox)
    gt_xmins = gt_bbox[:, 0]
    gt_xmaxs = gt_bbox[:, 1]
    gt_iou_map = np.zeros([temporal_scale, temporal_scale])
    for i in range(temporal_scale):
        for j in range(i, temporal_scale):
            gt_iou_map[i, j] = np.max(
                ref_iou_with_anchors(i * temporal_gap, (j + 1) * temporal_gap, gt_xmins, gt_xmaxs)
            )
    gt_iou_map = torch.Tensor(gt_iou_map)

    gt_len_small = 3 * temporal_gap
    gt_start_bboxs = np.stack((gt_xmins - gt_len_small / 2, gt_xmins + gt_len_small / 2), axis=1)
    gt_end_bboxs = np.stack((gt_xmaxs - gt_len_small / 2, gt_xmaxs + gt_len_small / 2), axis=1)

    match_score_start = []
    for jdx in range(len(anchor_xmin)):
        match_score_start.append(
            np.max(ref_ioa_with_anchors(anchor_xmin[jdx], anchor_xmax[jdx], gt_start_bboxs[:, 0], gt_start_bboxs[:, 1]))
        )
    match_score_end = []
    for jdx in range(len(anchor_xmin)):
        match_score_end.append(
            np.max(ref_ioa_with_anchors(anchor_xmin[jdx], anchor_xmax[jdx], gt_end_bboxs[:, 0], gt_end_bboxs[:, 1]))
        )
    return torch.Tensor(match_score_start), torch.Tensor(match_score_end), gt_iou_map


# -------------------------------------------------------------------------------------- reference: loss


def ref_bmn_loss_func(pred_bm, pred_start, pred_end, gt_iou_map, gt_start, gt_end, bm_mask):
    pred_bm_reg = pred_bm[:, 0].contiguous()
    pred_bm_cls = pred_bm[:, 1].contiguous()
    gt_iou_map = gt_iou_map * bm_mask
    pem_reg_loss = ref_pem_reg_loss_func(pred_bm_reg, gt_iou_map, bm_mask)
    pem_cls_loss = ref_pem_cls_loss_func(pred_bm_cls, gt_iou_map, bm_mask)
    tem_loss = ref_tem_loss_func(pred_start, pred_end, gt_start, gt_end)
    loss = tem_loss + 10 * pem_reg_loss + pem_cls_loss
    return loss, tem_loss, pem_reg_loss, pem_cls_loss


def ref_tem_loss_func(pred_start, pred_end, gt_start, gt_end):
    def bi_loss(pred_score, gt_label):
        pred_score = pred_score.view(-1)
        gt_label = gt_label.view(-1)
        pmask = (gt_label > 0.5).float()
        num_entries = len(pmask)
        num_positive = torch.sum(pmask)
        ratio = num_entries / num_positive
        coef_0 = 0.5 * ratio / (ratio - 1)
        coef_1 = 0.5 * ratio
        epsilon = 0.000001
        loss_pos = coef_1 * torch.log(pred_score + epsilon) * pmask
        loss_neg = coef_0 * torch.log(1.0 - pred_score + epsilon) * (1.0 - pmask)
        loss = -1 * torch.mean(loss_pos + loss_neg)
        return loss

    loss_start = bi_loss(pred_start, gt_start)
    loss_end = bi_loss(pred_end, gt_end)
    return loss_start + loss_end


def ref_pem_reg_loss_func(pred_score, gt_iou_map, mask):
    u_hmask = (gt_iou_map > 0.7).float()
    u_mmask = ((gt_iou_map <= 0.7) & (gt_iou_map > 0.3)).float()
    u_lmask = ((gt_iou_map <= 0.3) & (gt_iou_map > 0.0)).float()
    u_lmask = u_lmask * mask

    num_h = torch.sum(u_hmask)
    num_m = torch.sum(u_mmask)
    num_l = torch.sum(u_lmask)

    r_m = num_h / num_m
    u_smmask = torch.rand(*gt_iou_map.shape)  # np.random.rand(*gt_iou_map.shape)
    u_smmask = u_mmask * u_smmask
    u_smmask = (u_smmask > (1.0 - r_m)).float()

    r_l = num_h / num_l
    u_slmask = torch.rand(*gt_iou_map.shape)  # np.random.rand(*gt_iou_map.shape)
    u_slmask = u_lmask * u_slmask
    u_slmask = (u_slmask > (1.0 - r_l)).float()

    weights = u_hmask + u_smmask + u_slmask

    loss = F.mse_loss(pred_score * weights, gt_iou_map * weights)
    loss = 0.5 * torch.sum(loss * torch.ones(*weights.shape)) / torch.sum(weights)
    return loss


def ref_pem_cls_loss_func(pred_score, gt_iou_map, mask):
    pmask = (gt_iou_map > 0.9).float()
    nmask = (gt_iou_map <= 0.9).float()
    nmask = nmask * mask

    num_positive = torch.sum(pmask)
    num_entries = num_positive + torch.sum(nmask)
    ratio = num_entries / num_positive
    coef_0 = 0.5 * ratio / (ratio - 1)
    coef_1 = 0.5 * ratio
    epsilon = 0.000001
    loss_pos = coef_1 * torch.log(pred_score + epsilon) * pmask
    loss_neg = coef_0 * torch.log(1.0 - pred_score + epsilon) * nmask
    loss = -1 * torch.sum(loss_pos + loss_neg) / num_entries
    return loss


# ------------------------------------------------------------------------ reference: inference, Soft-NMS


def ref_candidates(start_scores, end_scores, clr_confidence, reg_confidence, tscale):
    new_props = []
    for idx in range(tscale):
        for jdx in range(tscale):
            start_index = idx
            end_index = jdx + 1
            if start_index < end_index and end_index < tscale:
                xmin = start_index / tscale
                xmax = end_index / tscale
                xmin_score = start_scores[start_index]
                xmax_score = end_scores[end_index]
                clr_score = clr_confidence[idx, jdx]
                reg_score = reg_confidence[idx, jdx]
                score = xmin_score * xmax_score * clr_score * reg_score
                new_props.append([xmin, xmax, xmin_score, xmax_score, clr_score, reg_score, score])
    return np.stack(new_props)


def ref_soft_nms(xmin, xmax, score, alpha, t1, t2):
    order = sorted(range(len(score)), key=lambda i: -score[i])  # df.sort_values(by="score", ascending=False)
    tstart = [xmin[i] for i in order]
    tend = [xmax[i] for i in order]
    tscore = [score[i] for i in order]
    rstart, rend, rscore = [], [], []
    while len(tscore) > 1 and len(rscore) < 101:
        max_index = tscore.index(max(tscore))
        tmp_iou_list = ref_iou_with_anchors(np.array(tstart), np.array(tend), tstart[max_index], tend[max_index])
        for idx in range(0, len(tscore)):
            if idx != max_index:
                tmp_iou = tmp_iou_list[idx]
                tmp_width = tend[max_index] - tstart[max_index]
                if tmp_iou > t1 + (t2 - t1) * tmp_width:
                    tscore[idx] = tscore[idx] * np.exp(-np.square(tmp_iou) / alpha)
        rstart.append(tstart[max_index])
        rend.append(tend[max_index])
        rscore.append(tscore[max_index])
        tstart.pop(max_index)
        tend.pop(max_index)
        tscore.pop(max_index)
    return rscore, rstart, rend


def ref_video_post_process(props, video_info, alpha=0.4, t1=0.5, t2=0.9):
    xmin, xmax, score = list(props[:, 0]), list(props[:, 1]), list(props[:, 6])
    if len(score) > 1:
        score, xmin, xmax = ref_soft_nms(xmin, xmax, score, alpha, t1, t2)
    order = sorted(range(len(score)), key=lambda i: -score[i])
    video_duration = (
        float(video_info["duration_frame"] // 16 * 16) / video_info["duration_frame"] * video_info["duration_second"]
    )
    proposal_list = []
    for j in range(min(100, len(order))):
        k = order[j]
        proposal_list.append(
            {"score": score[k], "segment": [max(0, xmin[k]) * video_duration, min(1, xmax[k]) * video_duration]}
        )
    return proposal_list


# ------------------------------------------------------------------------------- reference: AR@AN toolkit


def ref_segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (
        (candidate_segments[:, 1] - candidate_segments[:, 0])
        + (target_segment[1] - target_segment[0])
        - segments_intersection
    )
    return segments_intersection.astype(float) / segments_union


def ref_wrapper_segment_iou(target_segments, candidate_segments):
    n, m = candidate_segments.shape[0], target_segments.shape[0]
    tiou = np.empty((n, m))
    for i in range(m):
        tiou[:, i] = ref_segment_iou(target_segments[i, :], candidate_segments)
    return tiou


def ref_average_recall_vs_avg_nr_proposals(
    ground_truth, proposals, max_avg_nr_proposals=None, tiou_thresholds=TIOU_THRESHOLDS
):
    """`ground_truth` / `proposals`: lists of (video-id, t-start, t-end[, score]) rows, as the DataFrames."""
    video_lst = np.array(list(dict.fromkeys(row[0] for row in ground_truth)))  # .unique(): first-seen order
    n_proposals = len(proposals)
    if not max_avg_nr_proposals:
        max_avg_nr_proposals = float(n_proposals) / video_lst.shape[0]
    ratio = max_avg_nr_proposals * float(video_lst.shape[0]) / n_proposals

    score_lst = []
    total_nr_proposals = 0
    for videoid in video_lst:
        rows = [row for row in proposals if row[0] == videoid]  # proposals_gbvn.get_group(videoid)
        this_video_proposals = np.array([[row[1], row[2]] for row in rows]).reshape(-1, 2)
        sort_idx = np.array([row[3] for row in rows]).argsort()[::-1]
        this_video_proposals = this_video_proposals[sort_idx, :]
        this_video_ground_truth = np.array([[row[1], row[2]] for row in ground_truth if row[0] == videoid])

        if this_video_proposals.shape[0] == 0:
            n = this_video_ground_truth.shape[0]
            score_lst.append(np.zeros((n, 1)))
            continue

        nr_proposals = np.minimum(int(this_video_proposals.shape[0] * ratio), this_video_proposals.shape[0])
        total_nr_proposals += nr_proposals
        this_video_proposals = this_video_proposals[:nr_proposals, :]
        tiou = ref_wrapper_segment_iou(this_video_proposals, this_video_ground_truth)
        score_lst.append(tiou)

    pcn_lst = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(video_lst.shape[0]) / total_nr_proposals)
    matches = np.empty((video_lst.shape[0], pcn_lst.shape[0]))
    positives = np.empty(video_lst.shape[0])
    recall = np.empty((tiou_thresholds.shape[0], pcn_lst.shape[0]))
    for ridx, tiou in enumerate(tiou_thresholds):
        for i, score in enumerate(score_lst):
            positives[i] = score.shape[0]
            true_positives_tiou = score >= tiou
            pcn_proposals = np.minimum((score.shape[1] * pcn_lst).astype(int), score.shape[1])
            for j, nr_proposals in enumerate(pcn_proposals):
                matches[i, j] = np.count_nonzero((true_positives_tiou[:, :nr_proposals]).sum(axis=1))
        recall[ridx, :] = matches.sum(axis=0) / positives.sum()

    avg_recall = recall.mean(axis=0)
    proposals_per_video = pcn_lst * (float(total_nr_proposals) / video_lst.shape[0])
    return recall, avg_recall, proposals_per_video


def ref_metrics(ground_truth, proposals):
    recall, avg_recall, ppv = ref_average_recall_vs_avg_nr_proposals(ground_truth, proposals, 100)
    area = np.trapezoid(avg_recall, ppv)  # np.trapz in the toolkit (removed in numpy 2.4)
    metrics = {f"AR@{n}": 100.0 * np.mean(recall[:, n - 1]) for n in (1, 5, 10, 100)}
    return metrics | {"AUC": 100.0 * float(area) / ppv[-1]}, recall


# ------------------------------------------------------------------------------------------------ helpers


def random_video(rng: np.random.Generator, max_segments: int = 5) -> dict:
    duration_second = float(rng.uniform(20, 200))
    duration_frame = int(duration_second * 30)
    feature_frame = duration_frame // 16 * 16 + int(rng.choice([0, 16, -16]))
    segments = []
    for _ in range(int(rng.integers(1, max_segments + 1))):
        a, b = np.sort(rng.uniform(-0.05, 1.1, 2)) * duration_second  # some beyond the end, clipped
        segments.append([max(0.0, float(a)), float(b)])
    if rng.random() < 0.3:
        segments.append([segments[0][0], segments[0][0]])  # a zero-length instance
    return {
        "duration_second": duration_second,
        "duration_frame": duration_frame,
        "feature_frame": feature_frame,
        "annotations": [{"segment": s, "label": "x"} for s in segments],
    }


def normalized(video: dict) -> torch.Tensor:
    corrected = float(video["feature_frame"]) / video["duration_frame"] * video["duration_second"]
    return torch.tensor([a["segment"] for a in video["annotations"]], dtype=torch.float64) / corrected


def random_batch(seed: int, batch: int, temporal_scale: int):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng) for _ in range(batch)]
    segments, valid = pad_segments([normalized(v) for v in videos])
    return videos, bmn_targets(segments, valid, temporal_scale)


# ----------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("temporal_scale", [100, 37])
def test_targets_equal_reference(temporal_scale: int) -> None:
    videos, (iou_map, start, end) = random_batch(0, 6, temporal_scale)
    for b, video in enumerate(videos):
        ref_start, ref_end, ref_iou = ref_get_train_label(video, temporal_scale)
        assert torch.equal(iou_map[b], ref_iou)
        assert torch.equal(start[b], ref_start)
        assert torch.equal(end[b], ref_end)
    assert (iou_map > 0.9).any() and (start > 0.5).any()  # the comparison covers positives too


def test_targets_without_segments_are_zero() -> None:
    iou_map, start, end = bmn_targets(torch.zeros(2, 0, 2), torch.zeros(2, 0, dtype=torch.bool), 10)
    assert iou_map.shape == (2, 10, 10) and start.shape == end.shape == (2, 10)
    assert not iou_map.any() and not start.any() and not end.any()


# ------------------------------------------------------------------------------------------------- loss


def predictions(seed: int, batch: int, temporal_scale: int):
    generator = torch.Generator().manual_seed(seed)
    conf_map = torch.sigmoid(torch.randn(batch, 2, temporal_scale, temporal_scale, generator=generator))
    start = torch.sigmoid(torch.randn(batch, temporal_scale, generator=generator))
    end = torch.sigmoid(torch.randn(batch, temporal_scale, generator=generator))
    return conf_map, start, end


@pytest.mark.numerics
def test_loss_equals_reference_with_the_same_draws() -> None:
    temporal_scale = 100
    _, (iou_map, gt_start, gt_end) = random_batch(1, 4, temporal_scale)
    conf_map, start, end = predictions(0, 4, temporal_scale)
    bm_mask = torch.ones(temporal_scale, temporal_scale).triu()
    masked = iou_map * bm_mask
    num_high = (masked > 0.7).sum()
    assert 0 < num_high < ((masked > 0.3) & (masked <= 0.7)).sum()  # the reference's sampling regime
    assert num_high < ((masked > 0) & (masked <= 0.3)).sum()

    torch.manual_seed(123)
    ref = ref_bmn_loss_func(conf_map, start, end, iou_map, gt_start, gt_end, bm_mask)
    torch.manual_seed(123)
    loss, terms = bmn_loss(conf_map, start, end, iou_map, gt_start, gt_end)
    ours = (loss, terms["tem_loss"], terms["pem_reg_loss"], terms["pem_cls_loss"])
    for mine, theirs in zip(ours, ref, strict=True):
        assert_close(mine, theirs)


def test_regression_keeps_a_band_smaller_than_the_high_one_whole() -> None:
    gt = torch.zeros(1, 10, 10)
    gt[0, 0, :8] = 0.8  # 8 high cells
    gt[0, 1, 2:5] = 0.5  # 3 medium cells: r_m = 8/3 > 1
    pred = torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(0))
    used = gt > 0
    expected = 0.5 * ((pred - gt)[used] ** 2).mean()  # the reference would also take every other cell of the map
    assert_close(pem_reg_loss(pred, gt, torch.ones(10, 10).triu()), expected)


@pytest.mark.numerics
def test_loss_is_finite_without_positives() -> None:
    temporal_scale = 20
    conf_map, start, end = predictions(3, 2, temporal_scale)
    conf_map.requires_grad_(True)
    zeros_map, zeros = torch.zeros(2, temporal_scale, temporal_scale), torch.zeros(2, temporal_scale)
    loss, terms = bmn_loss(conf_map, start, end, zeros_map, zeros, zeros)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.isfinite(conf_map.grad).all()
    # the limits: TEM and cls become plain 0.5 * log losses on negatives, the regression term is 0
    expected_tem = sum(-torch.mean(0.5 * torch.log(1 - p.reshape(-1) + 1e-6)) for p in (start, end))
    assert_close(terms["tem_loss"], expected_tem)
    mask = torch.ones(temporal_scale, temporal_scale).triu()
    expected_cls = -torch.sum(0.5 * torch.log(1 - conf_map[:, 1].detach() + 1e-6) * mask) / (2 * mask.sum())
    assert_close(terms["pem_cls_loss"], expected_cls)
    assert float(terms["pem_reg_loss"]) == 0.0
    # and with every anchor positive (no negative), still finite
    ones = torch.ones(2, temporal_scale)
    loss, terms = bmn_loss(conf_map, start, end, mask.expand(2, -1, -1), ones, ones)
    assert math.isfinite(float(loss))
    assert_close(terms["tem_loss"], sum(-torch.mean(0.5 * torch.log(p + 1e-6)) for p in (start, end)))


# ------------------------------------------------------------------------------------ inference, Soft-NMS


def test_score_candidates_equals_reference_loops() -> None:
    temporal_scale = 12
    conf_map, start, end = predictions(4, 2, temporal_scale)
    scores = postprocess.score_candidates(start, end, conf_map)
    segments = postprocess.candidate_segments(temporal_scale)
    assert scores.shape == (2, temporal_scale * (temporal_scale - 1) // 2) and scores.dtype == torch.float32
    for v in range(2):
        ref = ref_candidates(start[v].numpy(), end[v].numpy(), conf_map[v, 1].numpy(), conf_map[v, 0].numpy(), 12)
        assert np.array_equal(segments, ref[:, :2])
        assert np.array_equal(scores[v].numpy().astype(np.float64), ref[:, 6])


def test_soft_nms_equals_reference_on_random_candidates() -> None:
    rng = np.random.default_rng(5)
    videos, n = 4, 140  # more than 101, so the top_k stop is exercised
    starts = rng.uniform(0, 0.9, (videos, n))
    segments = np.stack([starts, np.minimum(starts + rng.uniform(0.01, 0.6, (videos, n)), 1.0)], axis=2)
    scores = rng.random((videos, n))
    scores[0, 10:20] = scores[0, 3]  # ties: equal initial scores
    segments[1, 30] = segments[1, 31]  # a duplicate box
    scores[2, 70:] = np.nan  # a video with only 70 candidates: keeps 69
    kept_segments, kept_scores = postprocess.soft_nms(segments, scores, alpha=0.4, low=0.5, high=0.9)
    for v in range(videos):
        present = ~np.isnan(scores[v])
        xmin, xmax, score = (list(segments[v, present, 0]), list(segments[v, present, 1]), list(scores[v, present]))
        rscore, rstart, rend = ref_soft_nms(xmin, xmax, score, 0.4, 0.5, 0.9)
        count = len(rscore)
        assert count == (101 if v != 2 else 69)
        assert np.array_equal(kept_scores[v, :count], rscore) and np.isnan(kept_scores[v, count:]).all()
        assert np.array_equal(kept_segments[v, :count], np.stack([rstart, rend], axis=1))


def test_soft_nms_on_the_grid_equals_reference() -> None:
    temporal_scale = 24  # 276 candidates
    conf_map, start, end = predictions(6, 2, temporal_scale)
    scores = postprocess.score_candidates(start, end, conf_map).double().numpy()
    scores[1, 40:60] = scores[1, 5]  # ties after the float32 product
    segments = postprocess.candidate_segments(temporal_scale)
    factors = postprocess.grid_decay_factors(temporal_scale, 0.4, 0.5, 0.9)
    kept, kept_scores = postprocess.soft_nms_select(scores, factors)
    for v in range(2):
        rscore, rstart, rend = ref_soft_nms(list(segments[:, 0]), list(segments[:, 1]), list(scores[v]), 0.4, 0.5, 0.9)
        assert np.array_equal(kept_scores[v], rscore)
        assert np.array_equal(segments[kept[v]], np.stack([rstart, rend], axis=1))


def test_post_process_equals_reference_seconds_and_order() -> None:
    temporal_scale = 30
    conf_map, start, end = predictions(7, 1, temporal_scale)
    info = {"duration_second": 123.45, "duration_frame": 3701, "feature_frame": 3712}
    duration = postprocess.reference_duration(info["duration_second"], info["duration_frame"])
    assert duration == 3696 / 3701 * 123.45  # duration_frame // 16 * 16, not feature_frame
    ours = postprocess.post_process(postprocess.score_candidates(start, end, conf_map), [duration], temporal_scale)[0]
    props = ref_candidates(start[0].numpy(), end[0].numpy(), conf_map[0, 1].numpy(), conf_map[0, 0].numpy(), 30)
    ref = ref_video_post_process(props, info)
    assert len(ours) == len(ref) == 100
    assert [p["score"] for p in ours] == [float(p["score"]) for p in ref]
    assert [p["segment"] for p in ours] == [[float(x) for x in p["segment"]] for p in ref]


def test_proposals_json_format(tmp_path: Path) -> None:
    results = {postprocess.video_id("v_abc-123_xY"): [{"score": 0.5, "segment": [1.0, 2.5]}]}
    path = postprocess.write_proposals(tmp_path / "out" / "proposals.json", results)
    data = json.loads(path.read_text())
    assert data == {
        "version": "VERSION 1.3",
        "results": {"abc-123_xY": [{"score": 0.5, "segment": [1.0, 2.5]}]},
        "external_data": {},
    }
    loaded = postprocess.load_proposals(path)
    assert np.array_equal(loaded["abc-123_xY"], [[1.0, 2.5, 0.5]])


# ------------------------------------------------------------------------------------------- evaluation


def random_ground_truth_and_proposals(seed: int, videos: int = 25):
    rng = np.random.default_rng(seed)
    truth, found = {}, {}
    for v in range(videos):
        duration = float(rng.uniform(10, 200))
        k = int(rng.integers(1, 5))
        starts = rng.uniform(0, 0.8, k) * duration
        truth[f"vid{v}"] = np.stack([starts, starts + rng.uniform(0.02, 0.5, k) * duration], axis=1)
        n = int(rng.choice([3, 60, 100, 130]))  # some videos with more, some with fewer than 100
        props = np.sort(rng.uniform(0, duration, (n, 2)), axis=1)
        props[: n // 4] = truth[f"vid{v}"][rng.integers(0, k, n // 4)] + rng.normal(0, 2.0, (n // 4, 2))
        scores = np.round(rng.random(n), 2)  # rounded: equal scores, ordered by the toolkit's quicksort
        found[f"vid{v}"] = np.concatenate([props, scores[:, None]], axis=1)
    found["not-in-gt"] = np.array([[0.0, 1.0, 0.9]] * 7)  # counted in the ratio, as by the toolkit
    return truth, found


def as_rows(truth, found):
    gt_rows = [(name, s, e) for name, segments in truth.items() for s, e in segments]
    prop_rows = [(name, s, e, score) for name, props in found.items() for s, e, score in props]
    return gt_rows, prop_rows


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluation_equals_toolkit(seed: int) -> None:
    truth, found = random_ground_truth_and_proposals(seed)
    ref, ref_recall = ref_metrics(*as_rows(truth, found))
    ours = anet_metrics.evaluate_proposals(truth, found)
    for key in ("AR@1", "AR@5", "AR@10", "AR@100", "AUC"):
        assert ours[key] == ref[key], key
    assert np.array_equal(np.array(ours["curve"]["recall"]), ref_recall)
    assert 0 < ours["AR@1"] < ours["AR@100"] < 100


def test_video_without_proposals_counts_as_found_nothing(caplog: pytest.LogCaptureFixture) -> None:
    truth, found = random_ground_truth_and_proposals(2, videos=10)
    del found["vid3"]
    with caplog.at_level(logging.WARNING, logger="visionzoo"):
        ours = anet_metrics.evaluate_proposals(truth, found)
    assert "1 of 10 ground-truth videos have no proposals" in caplog.text
    found["vid3"] = np.zeros((0, 3))  # the toolkit's own empty-video branch (unreachable there: KeyError first)
    ref, _ = ref_metrics(*as_rows(truth, found))
    assert all(ours[key] == ref[key] for key in ref)
    assert ours["videos_without_proposals"] == 1


def test_ground_truth_database_json_and_cli_entry(tmp_path: Path) -> None:
    database = {
        "a1": {"subset": "validation", "duration": 50.0, "annotations": [{"segment": [1.0, 9.0], "label": "x"}]},
        "b2": {"subset": "training", "duration": 30.0, "annotations": [{"segment": [0.0, 3.0], "label": "y"}]},
        "c3": {"subset": "validation", "duration": 20.0, "annotations": [{"segment": [5.0, 15.0], "label": "x"}]},
    }
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    truth = anet_metrics.load_ground_truth(gt_path)
    assert list(truth.segments) == ["a1", "c3"] and truth.durations == {"a1": 50.0, "c3": 20.0}
    results = {"a1": [{"score": 0.9, "segment": [1.0, 9.0]}], "c3": [{"score": 0.8, "segment": [0.0, 20.0]}]}
    proposals_path = postprocess.write_proposals(tmp_path / "p.json", results)
    metrics = anet_metrics.evaluate_proposals_file(gt_path, proposals_path, plot=tmp_path / "curve.png")
    # a1 found exactly (tIoU 1); c3's whole-video proposal has tIoU 0.5, found only at threshold 0.5
    assert metrics["AR@100"] == pytest.approx(100 * (10 + 1) / 20)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_files_raise_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for call in (lambda: postprocess.load_proposals(bad), lambda: anet_metrics.load_ground_truth(bad)):
        with pytest.raises(VisionZooError, match="not valid JSON"):
            call()
    bad.write_text(json.dumps({"results": {"a": [{"segment": [1.0], "score": 1}]}}))
    with pytest.raises(VisionZooError, match=r"bad.json: results.a\[0\].segment\[1\]: field required"):
        postprocess.load_proposals(bad)
    with pytest.raises(VisionZooError, match="bad.json: database: field required"):
        anet_metrics.load_ground_truth(bad)


@pytest.mark.skipif(not SHARED_ACTIVITYNET.is_dir(), reason="real ActivityNet annotations not present")
def test_real_validation_ground_truth_and_sliding_window_baseline() -> None:
    truth = anet_metrics.load_ground_truth(SHARED_ACTIVITYNET)
    assert len(truth.segments) == 4728
    assert sum(len(s) for s in truth.segments.values()) == 7293  # the reference's activity_net_1_3_new.json
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = {
            name: np.array([[*p["segment"], p["score"]] for p in postprocess.sliding_window_proposals(duration)])
            for name, duration in truth.durations.items()
        }
        metrics = anet_metrics.evaluate_proposals(truth.segments, found)
    assert all(len(p) == 100 for p in found.values()) and found["--1DO2V4K74"][0, :2].tolist() == [0.0, 211.53]
    assert 0 < metrics["AUC"] < 67.1  # knows nothing but durations: well below BMN's published 67.1


# ------------------------------------------------------------------------------------------------ task


def tiny_recipe(**changes) -> ProposalRecipe:
    return ProposalRecipe(
        name="tiny", model="bmn", data_format="activitynet", temporal_scale=16, feat_dim=8, num_sample=4, **changes
    )


def test_task_train_and_eval_steps() -> None:
    task = ProposalTask(tiny_recipe())
    torch.manual_seed(0)
    model = task.build_model()
    batch = task.example_batch(3)
    loss, logs = task.train_step(model, batch)
    loss.backward()
    assert math.isfinite(float(loss)) and set(logs) == {"tem_loss", "pem_reg_loss", "pem_cls_loss"}
    assert_close(loss.detach(), logs["tem_loss"] + 10 * logs["pem_reg_loss"] + logs["pem_cls_loss"])

    segments = [np.array([[10.0, 60.0]]), np.array([[0.0, 20.0], [50.0, 99.0]]), np.array([[30.0, 31.0]])]
    videos = [
        VideoRecord(name, "validation", 100.0, 1600, 100.0, s, []) for name, s in zip("abc", segments, strict=True)
    ]
    items = [(batch[0][i], torch.from_numpy(segments[i] / 100.0).float(), videos[i]) for i in range(3)]
    eval_batch = task.collate(items)  # the items carry their videos: no state from build_datasets
    model.eval()
    task.eval_begin()
    with torch.no_grad():
        task.eval_step(model, eval_batch)
    result = task.eval_end(lambda obj: [obj])
    metrics, proposals = result.metrics, result.outputs["proposals"]
    assert set(metrics) >= {"eval_loss", "eval_tem_loss", "eval_pem_reg_loss", "eval_pem_cls_loss", "AR@1", "AR@100"}
    assert metrics["eval_videos"] == 3 and all(len(p) == 100 for p in proposals.values())
    assert all(0 <= p["segment"][0] <= p["segment"][1] <= 100.0 for p in proposals["b"])
    # the evaluation's loss draws from its own generator: same number twice, global RNG untouched
    state = torch.get_rng_state()
    task.eval_begin()
    with torch.no_grad():
        task.eval_step(model, eval_batch)
    assert task.eval_end(lambda obj: [obj]).metrics["eval_loss"] == metrics["eval_loss"]
    assert torch.equal(torch.get_rng_state(), state)
