"""BMN's training targets and loss (JJBOY/BMN a92c1d7 `dataset.py _get_train_label`, `loss_function.py`).

Computed for the whole batch at once in torch instead of per video in Python loops. The loss is batch-global,
as the reference's (its DataParallel gathers the batch before the loss), so positive/negative ratios are over
the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEM_POSITIVE = 0.5  # start/end label above which an anchor is a boundary
PEM_HIGH, PEM_LOW = 0.7, 0.3  # IoU bands of the regression loss's sampling
PEM_POSITIVE = 0.9  # IoU above which a map cell is a positive of the classification loss
REG_WEIGHT = 10.0  # loss = tem + 10 * reg + 1 * cls
EPSILON = 1e-6
LOSS_TERMS = ("tem_loss", "pem_reg_loss", "pem_cls_loss")


# ------------------------------------------------------------------------------------------------- labels


def bmn_targets(
    segments: torch.Tensor, valid: torch.Tensor, temporal_scale: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gt_iou_map [B, T, T], match_score_start [B, T], match_score_end [B, T]) float32 from GT segments.

    `segments` [B, K, 2] are fractions of the feature span (clipped to [0, 1] here, as the reference does),
    `valid` [B, K] marks the real ones (batches pad K). The reference's float64 operations, in its order:
    - IoU map: cell [i, j], j >= i, is max over GTs of IoU([i g, (j + 1) g], GT), 0 below the diagonal;
    - start/end: anchor i = [g (i - 0.5), g (i + 0.5)], max over GTs of its intersection-over-anchor with the
      boundary region [b - 1.5 g, b + 1.5 g] of the GT's start (end).
    A video without segments gets all-zero targets (the reference's np.max of nothing raises).
    """
    if segments.shape[1] == 0:  # one invalid column keeps the max over GTs defined
        segments, valid = segments.new_zeros(len(segments), 1, 2), valid.new_zeros(len(segments), 1)
    gap = 1.0 / temporal_scale
    bounds = segments.double().clamp(0.0, 1.0)
    gt_start, gt_end = bounds[..., 0, None, None], bounds[..., 1, None, None]  # [B, K, 1, 1]
    index = torch.arange(temporal_scale, dtype=torch.float64, device=segments.device)

    window_start, window_end = (index * gap)[:, None], ((index + 1) * gap)[None, :]  # cell [i, j]
    inter = (torch.minimum(window_end, gt_end) - torch.maximum(window_start, gt_start)).clamp(min=0.0)
    iou = inter / ((window_end - window_start) - inter + gt_end - gt_start)
    iou = iou.masked_fill(~valid[..., None, None], 0.0).amax(dim=1)
    iou_map = torch.triu(iou)

    anchor_start, anchor_end = gap * (index - 0.5), gap * (index + 0.5)
    half_region = 3 * gap / 2

    def ioa(boundary: torch.Tensor) -> torch.Tensor:
        region_start, region_end = boundary[..., 0] - half_region, boundary[..., 0] + half_region  # [B, K, 1]
        inter = (torch.minimum(anchor_end, region_end) - torch.maximum(anchor_start, region_start)).clamp(min=0.0)
        score = (inter / (anchor_end - anchor_start)).masked_fill(~valid[..., None], 0.0)
        return score.amax(dim=1)

    return iou_map.float(), ioa(gt_start).float(), ioa(gt_end).float()


def valid_cells(temporal_scale: int, device: torch.device | None = None) -> torch.Tensor:
    """bm_mask: 1 on the [start, end] map's valid cells (end >= start)."""
    return torch.ones(temporal_scale, temporal_scale, device=device).triu()


# --------------------------------------------------------------------------------------------------- loss


def _balanced_coefficients(num_positive: torch.Tensor, num_entries: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(coef_1, coef_0) = (0.5 r, 0.5 r / (r - 1)), r = entries / positives, as the reference.

    Where the reference divides by zero they take their limits instead of inf/NaN: no positive gives
    coef_1 = 0 (no positive term) and coef_0 = 0.5; no negative gives coef_0 = 0 (coef_1 is then 0.5).
    """
    ratio = num_entries / num_positive
    coef_1 = torch.where(num_positive > 0, 0.5 * ratio, 0.0)
    coef_0 = torch.where(num_positive > 0, 0.5 * ratio / (ratio - 1), 0.5)
    return coef_1, torch.where(num_positive < num_entries, coef_0, 0.0)


def tem_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`bi_loss`: class-balanced binary log loss over all B*T anchors (a mean over entries)."""
    pred, positive = pred.reshape(-1), (target.reshape(-1) > TEM_POSITIVE).float()
    coef_1, coef_0 = _balanced_coefficients(positive.sum(), torch.tensor(float(positive.numel())))
    loss_pos = coef_1 * torch.log(pred + EPSILON) * positive
    loss_neg = coef_0 * torch.log(1.0 - pred + EPSILON) * (1.0 - positive)
    return -torch.mean(loss_pos + loss_neg)


def pem_reg_loss(
    pred: torch.Tensor, gt_iou: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Half MSE over all cells with IoU > 0.7 plus random subsets of the (0.3, 0.7] and (0, 0.3] bands.

    Each band cell is kept when a uniform draw exceeds 1 - num_high / num_band (on average num_high cells per
    band), drawn per element, medium band first, from `generator` (the global torch generator by default,
    which the engine checkpoints). Cells with IoU == 0 are never used. Differences from the reference: a
    band with fewer cells than the high one is kept whole (the reference's threshold then goes negative and
    selects every cell of the map, valid or not), and no sampled cell gives 0 instead of 0/0 = NaN.
    """
    high = (gt_iou > PEM_HIGH).float()
    medium = ((gt_iou <= PEM_HIGH) & (gt_iou > PEM_LOW)).float()
    low = ((gt_iou <= PEM_LOW) & (gt_iou > 0.0)).float() * mask
    num_high = high.sum()
    weights = high
    for band in (medium, low):
        draw = torch.rand(gt_iou.shape, generator=generator, device=gt_iou.device)
        weights = weights + band * ((band * draw) > (1.0 - num_high / band.sum())).float()
    return 0.5 * F.mse_loss(pred * weights, gt_iou * weights, reduction="sum") / weights.sum().clamp(min=1.0)


def pem_cls_loss(pred: torch.Tensor, gt_iou: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Class-balanced log loss, positives IoU > 0.9, over the valid cells (a sum / number of valid cells)."""
    positive = (gt_iou > PEM_POSITIVE).float()
    negative = (gt_iou <= PEM_POSITIVE).float() * mask
    num_positive = positive.sum()
    num_entries = num_positive + negative.sum()
    coef_1, coef_0 = _balanced_coefficients(num_positive, num_entries)
    loss_pos = coef_1 * torch.log(pred + EPSILON) * positive
    loss_neg = coef_0 * torch.log(1.0 - pred + EPSILON) * negative
    return -torch.sum(loss_pos + loss_neg) / num_entries.clamp(min=1.0)


def bmn_loss(
    conf_map: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    gt_iou_map: torch.Tensor,
    gt_start: torch.Tensor,
    gt_end: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """tem + 10 * reg + cls in float32 (outside autocast), and the detached terms for logging.

    Finite for any batch: where the reference divides by a count of zero (no TEM positive, no IoU > 0.9
    cell, no sampled regression cell) the term takes its limit (see `_balanced_coefficients`) or 0.
    """
    with torch.autocast(conf_map.device.type, enabled=False):
        conf_map, start, end = conf_map.float(), start.float(), end.float()
        mask = valid_cells(gt_iou_map.shape[-1], gt_iou_map.device)
        gt_iou = gt_iou_map.float() * mask
        terms = {
            "tem_loss": tem_loss(start, gt_start) + tem_loss(end, gt_end),
            "pem_reg_loss": pem_reg_loss(conf_map[:, 0], gt_iou, mask, generator),
            "pem_cls_loss": pem_cls_loss(conf_map[:, 1], gt_iou, mask),
        }
        loss = terms["tem_loss"] + REG_WEIGHT * terms["pem_reg_loss"] + terms["pem_cls_loss"]
    return loss, {name: value.detach() for name, value in terms.items()}
