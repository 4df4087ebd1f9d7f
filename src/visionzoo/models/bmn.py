"""BMN (Lin et al., "BMN: Boundary-Matching Network for Temporal Action Proposal Generation", ICCV 2019).

Paper: https://arxiv.org/abs/1907.09702 - reference: JJBOY/BMN-Boundary-Matching-Network a92c1d7 (final), whose
layers and state-dict names this follows, so its `BMN_best.pth.tar` (and the Ascend ModelZoo port's, same layout)
loads as is. Map layout [start, end] (cell [s, e], s <= e, is the proposal [s/T, (e+1)/T]); channel 0 of the
confidence map is the regression score, channel 1 the classification score.

What differs from the reference is how the boundary-matching layer is computed, never its result:
- The reference multiplies features by a dense [T, N*T*T] sample mask (98.5% zeros) into a [B, 256, N, T, T]
  tensor (5.2 GB at B=16, T=100) that the Conv3d then reduces. Both are linear, so we contract the Conv3d weight
  with the features first (Z[b,o,n,t] = sum_c W[o,c,n] x[b,c,t], [B, 512, N*T]) and then apply the sample weights,
  only for the T(T+1)/2 valid cells. Invalid cells (s > e) see an all-zero mask in the reference, so their Conv3d
  output is exactly the bias; we reproduce that.
- The sample weights are built vectorised (same float64 operations in the same order as the reference's python
  loops, then float32) and kept as non-persistent buffers: they are a function of the hyper-parameters, not
  learned, and the reference's 128 MB `sample_mask` parameter is dropped from its checkpoints on load.

`bm_impl` picks the formulation: "sparse" (CSR sample matrix, 479k nonzeros at T=100: fastest in fp32 on CPU,
where CSR kernels have no bf16), "matmul" (the same reordering as one dense GEMM with a [N*T, cells] matrix: no
sparse tensors, so it exports to ONNX, and under bf16 autocast it is ~5x faster than CSR on AMX), "auto" (the
default: "matmul" under autocast, "sparse" otherwise) and "dense" (the reference's formulation, for
checking). The 2-D head runs on a channels-last map (faster oneDNN convs), so the
confidence map comes out channels-last; values and shape are the reference's.

timm-style API: `forward_features` gives the base features, `forward_head` the three outputs from them. There is
no classifier to reset, so `reset_classifier` / `get_classifier` are not provided.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError
from visionzoo.models.registry import register_model
from visionzoo.models.weights import load_weights

BM_IMPLS = ("auto", "sparse", "matmul", "dense")


def bm_sample_weights(
    temporal_scale: int = 100, prop_boundary_ratio: float = 0.5, num_sample: int = 32, num_sample_perbin: int = 3
) -> torch.Tensor:
    """The reference's boundary-matching sample mask as a sparse COO float32 tensor [N*T, T*T].

    Row n*T + t, column s*T + e: the weight of feature t in sample bin n of proposal cell [s, e]. Dense and
    reshaped to [T, N*T*T] (row t, column n*T*T + s*T + e) it equals JJBOY's `sample_mask` bit for bit: every
    float64 operation of `_get_interp1d_bin_mask` is done in the same order, vectorised over cells and bins.
    """
    t_scale, n_bins, per_bin = temporal_scale, num_sample, num_sample_perbin
    start, end = (idx.astype(np.int64) for idx in np.triu_indices(t_scale))  # valid cells s <= e, row-major
    p_xmin, p_xmax = start, end + 1
    center_len = (p_xmax - p_xmin).astype(np.float64) + 1
    seg_xmin = p_xmin - center_len * prop_boundary_ratio
    seg_xmax = p_xmax + center_len * prop_boundary_ratio
    step = (seg_xmax - seg_xmin) / (n_bins * per_bin - 1.0)
    points = seg_xmin[:, None] + step[:, None] * np.arange(n_bins * per_bin, dtype=np.float64)
    points = points.reshape(-1, n_bins, per_bin)  # [cells, N, K]
    frac, down = np.modf(points)  # trunc toward zero: points in (-1, 0) land on index 0, as in the reference
    down, up = down.astype(np.int64), np.ceil(points).astype(np.int64)

    # Accumulate each (cell, bin)'s contributions in the reference's order (down then up, sample by sample) into
    # a small window of indices starting at the first sample's `down`, so float64 sums round identically.
    base = down[..., :1]
    width = int((np.maximum(down, up) - base).max()) + 1
    acc = np.zeros((*points.shape[:2], width))
    rows = np.ogrid[: points.shape[0], :n_bins]
    for k in range(per_bin):
        for index, value in ((down[..., k], 1 - frac[..., k]), (up[..., k], frac[..., k])):
            inside = (index >= 0) & (index <= t_scale - 1)
            acc[rows[0], rows[1], index - base[..., 0]] += np.where(inside, value, 0.0)
    acc = (1.0 / per_bin * acc).astype(np.float32)

    cell, bin_idx, slot = np.nonzero(acc)
    t = base[cell, bin_idx, 0] + slot
    indices = np.stack([bin_idx * t_scale + t, start[cell] * t_scale + end[cell]])
    shape = (n_bins * t_scale, t_scale * t_scale)
    return torch.sparse_coo_tensor(
        torch.from_numpy(indices), torch.from_numpy(acc[cell, bin_idx, slot]), shape, check_invariants=True
    ).coalesce()


class _SparseSample(torch.autograd.Function):
    """y[b] = S^T @ z[b]^T for z [B, O, N*T] and sparse S [N*T, cells]: [B, cells, O], the channels-last map.

    CSR kernels run per sample (its O columns stay in cache while the kernel walks the nonzeros: about 2.5x
    faster than one call over the batch) and in float32 whatever the autocast dtype: CPU CSR has no bfloat16.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, z: torch.Tensor, weights_t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weights)
        return torch.stack([weights_t @ sample.t() for sample in z])

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weights,) = ctx.saved_tensors
        return torch.stack([(weights @ sample).t() for sample in grad]), None, None


class BMN(nn.Module):
    """Boundary-Matching Network: x [B, feat_dim, T] -> (confidence_map [B, 2, T, T], start [B, T], end [B, T])."""

    def __init__(
        self,
        temporal_scale: int = 100,
        prop_boundary_ratio: float = 0.5,
        num_sample: int = 32,
        num_sample_perbin: int = 3,
        feat_dim: int = 400,
        bm_impl: str = "auto",
    ) -> None:
        super().__init__()
        if bm_impl not in BM_IMPLS:
            raise VisionZooError(f"bm_impl={bm_impl!r}: expected one of {', '.join(BM_IMPLS)}")
        if feat_dim % 4:
            raise VisionZooError(f"feat_dim={feat_dim}: must be a multiple of 4 (the base convs use 4 groups)")
        self.temporal_scale = temporal_scale
        self.num_sample = num_sample
        self.bm_impl = bm_impl
        hidden_1d, hidden_2d, hidden_3d = 256, 128, 512

        self.x_1d_b = nn.Sequential(
            nn.Conv1d(feat_dim, hidden_1d, kernel_size=3, padding=1, groups=4),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden_1d, hidden_1d, kernel_size=3, padding=1, groups=4),
            nn.ReLU(inplace=True),
        )
        self.x_1d_s = self._boundary_head(hidden_1d)
        self.x_1d_e = self._boundary_head(hidden_1d)
        self.x_1d_p = nn.Sequential(nn.Conv1d(hidden_1d, hidden_1d, kernel_size=3, padding=1), nn.ReLU(inplace=True))
        self.x_3d_p = nn.Sequential(
            nn.Conv3d(hidden_1d, hidden_3d, kernel_size=(num_sample, 1, 1), stride=(num_sample, 1, 1)),
            nn.ReLU(inplace=True),
        )
        self.x_2d_p = nn.Sequential(
            nn.Conv2d(hidden_3d, hidden_2d, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, 2, kernel_size=1),
            nn.Sigmoid(),
        )
        self._register_sample_weights(
            bm_sample_weights(temporal_scale, prop_boundary_ratio, num_sample, num_sample_perbin)
        )

    @staticmethod
    def _boundary_head(channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size=3, padding=1, groups=4),
            nn.ReLU(inplace=True),
            nn.Conv1d(channels, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def _register_sample_weights(self, weights: torch.Tensor) -> None:
        """Buffers for the chosen formulation only (non-persistent: rebuilt from the hyper-parameters)."""
        t_scale = self.temporal_scale
        cells = torch.triu_indices(t_scale, t_scale)
        cells = cells[0] * t_scale + cells[1]
        self.register_buffer("cells", cells, persistent=False)
        compact_cols = torch.full((t_scale * t_scale,), -1, dtype=torch.long)
        compact_cols[cells] = torch.arange(len(cells))
        rows, cols = weights.indices()
        compact = torch.sparse_coo_tensor(
            torch.stack([rows, compact_cols[cols]]),
            weights.values(),
            (weights.shape[0], len(cells)),
            check_invariants=True,
        )
        if self.bm_impl in ("auto", "sparse"):
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state": known, and tested here
                warnings.simplefilter("ignore", UserWarning)
                self.register_buffer("weights_csr", compact.to_sparse_csr(), persistent=False)
                self.register_buffer("weights_t_csr", compact.t().coalesce().to_sparse_csr(), persistent=False)
        if self.bm_impl in ("auto", "matmul"):
            self.register_buffer("weights_dense", compact.to_dense(), persistent=False)
        if self.bm_impl == "dense":
            t_rows = rows % t_scale
            mask_cols = (rows // t_scale) * t_scale * t_scale + cols
            mask = torch.sparse_coo_tensor(
                torch.stack([t_rows, mask_cols]),
                weights.values(),
                (t_scale, weights.shape[0] * t_scale),
                check_invariants=True,
            )
            self.register_buffer("sample_mask", mask.to_dense(), persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Base features [B, 256, T] shared by the boundary and proposal heads."""
        return self.x_1d_b(x)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start = self.x_1d_s(features).squeeze(1)
        end = self.x_1d_e(features).squeeze(1)
        proposal = self._boundary_matching(self.x_1d_p(features))
        return self.x_2d_p(proposal), start, end

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def _boundary_matching(self, x: torch.Tensor) -> torch.Tensor:
        """BM layer + Conv3d + ReLU: [B, 256, T] -> [B, 512, T, T]."""
        batch, t_scale = x.shape[0], self.temporal_scale
        conv = self.x_3d_p[0]
        if self.bm_impl == "dense":
            sampled = torch.matmul(x, self.sample_mask).reshape(batch, x.shape[1], self.num_sample, t_scale, t_scale)
            return self.x_3d_p(sampled).squeeze(2)
        # [O, C, N, 1, 1] -> [O*N, C]: Z[b, o, n*T + t] = sum_c W[o, c, n] x[b, c, t]
        weight = conv.weight.squeeze(-1).squeeze(-1).permute(0, 2, 1).reshape(-1, x.shape[1])
        z = torch.matmul(weight, x).reshape(batch, conv.out_channels, -1)
        if self.bm_impl == "matmul" or (self.bm_impl == "auto" and torch.is_autocast_enabled(x.device.type)):
            # One GEMM [B*O, N*T] x [N*T, cells]: dense but 5x faster than CSR under bf16 (AMX / tensor cores).
            valid = torch.matmul(z.reshape(-1, z.shape[-1]), self.weights_dense).reshape(batch, z.shape[1], -1)
            bias = conv.bias.to(valid.dtype)[:, None]
            full = torch.relu(bias).expand(batch, -1, t_scale * t_scale).index_copy(2, self.cells, valid + bias)
            full = torch.relu(full).reshape(batch, -1, t_scale, t_scale)
            return full.contiguous(memory_format=torch.channels_last)
        valid = _SparseSample.apply(z, self.weights_t_csr, self.weights_csr)
        # Scatter the valid cells into a channels-last [B, T*T, O] map; invalid cells keep only the Conv3d bias.
        full = valid.new_zeros(batch, t_scale * t_scale, conv.out_channels).index_copy(1, self.cells, valid)
        full = torch.relu(full + conv.bias.to(full.dtype))
        return full.reshape(batch, t_scale, t_scale, -1).permute(0, 3, 1, 2)


def _reference_keys(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """JJBOY's and the Ascend port's checkpoints: same names once `module.` is stripped, plus the frozen mask."""
    return {k: v for k, v in state.items() if k != "sample_mask"}


@register_model
def bmn(pretrained: str | None = None, **kwargs) -> BMN:
    """BMN, JJBOY a92c1d7 configuration (4,978,564 parameters at feat_dim=400)."""
    model = BMN(**kwargs)
    if pretrained:
        load_weights(model, pretrained, filter_fn=_reference_keys)
    return model
