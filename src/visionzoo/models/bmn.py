"""BMN (Lin et al., "BMN: Boundary-Matching Network for Temporal Action Proposal Generation", ICCV 2019).

Paper: https://arxiv.org/abs/1907.09702 - reference: JJBOY/BMN-Boundary-Matching-Network a92c1d7 (final), whose
layers and state-dict names this follows, so its `BMN_best.pth.tar` (and the Ascend ModelZoo port's, same layout)
loads as is. Map layout [start, end] (cell [s, e], s <= e, is the proposal [s/T, (e+1)/T]); channel 0 of the
confidence map is the regression score, channel 1 the classification score.

What differs from the reference is how the boundary-matching layer is computed, never its result:
- The reference multiplies features by a dense [T, N*T*T] sample mask (98.5 % zeros) into a [B, 256, N, T, T]
  tensor that the Conv3d then reduces. Both are linear, so we contract the Conv3d weight with the features
  first (Z[b,o,n,t] = sum_c W[o,c,n] x[b,c,t], [B, 512, N*T]) and then apply the sample weights, only for the
  T(T+1)/2 valid cells. Invalid cells (s > e) see an all-zero mask in the reference, so their Conv3d output is
  exactly the bias; we reproduce that.
- The sample weights are built vectorised (same float64 operations in the same order as the reference's python
  loops, then float32) and kept as non-persistent buffers: they are a function of the hyper-parameters, not
  learned, and the reference's `sample_mask` parameter is dropped from its checkpoints on load.

`bm_impl` picks the formulation of that product: "sparse" (a CSR sample matrix; CSR kernels have no bf16),
"matmul" (the same product as one dense GEMM with a [N*T, cells] matrix: bf16 runs on the matrix units, and it
has ONNX operators), "auto" (the default: "matmul" under autocast and when exported, "sparse" otherwise) and
"dense" (the reference's own formulation, for checking). docs/bmn.md has their speeds. The 2-D head runs on a
channels-last map (faster oneDNN convs), so the confidence map comes out channels-last; values and shape are
the reference's.

timm-style API: `forward_features` gives the base features, `forward_head` the three outputs from them. There is
no classifier to reset, so `reset_classifier` / `get_classifier` are not provided.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError
from visionzoo.models.registry import ModelCfg, register_model
from visionzoo.models.weights import StateDict

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

    CSR kernels run per sample (its O columns stay in cache while the kernel walks the nonzeros, faster than
    one call over the batch) and in float32 whatever the autocast dtype: CPU CSR has no bfloat16.
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

    def _formulation(self, x: torch.Tensor) -> str:
        """The chosen `bm_impl`; "auto" takes the GEMM under autocast (matrix units) and in exports (ONNX ops)."""
        if self.bm_impl != "auto":
            return self.bm_impl
        exporting = torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting() or torch.jit.is_tracing()
        return "matmul" if exporting or torch.is_autocast_enabled(x.device.type) else "sparse"

    def _boundary_matching(self, x: torch.Tensor) -> torch.Tensor:
        """BM layer + Conv3d + ReLU: [B, 256, T] -> [B, 512, T, T]."""
        formulation = self._formulation(x)
        if formulation == "dense":
            return self._bm_dense(x)
        z = self._conv3d_weight_first(x)
        if formulation == "matmul":
            return self._bm_matmul(z)
        return self._bm_sparse(z)

    def _bm_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The reference: features x dense sample mask -> [B, 256, N, T, T] -> Conv3d over N."""
        batch, t_scale = x.shape[0], self.temporal_scale
        sampled = torch.matmul(x, self.sample_mask).reshape(batch, x.shape[1], self.num_sample, t_scale, t_scale)
        return self.x_3d_p(sampled).squeeze(2)

    def _conv3d_weight_first(self, x: torch.Tensor) -> torch.Tensor:
        """Z[b, o, n*T + t] = sum_c W[o, c, n] x[b, c, t]: the Conv3d weight [O, C, N, 1, 1] applied first."""
        conv = self.x_3d_p[0]
        weight = conv.weight.squeeze(-1).squeeze(-1).permute(0, 2, 1).reshape(-1, x.shape[1])
        return torch.matmul(weight, x).reshape(x.shape[0], conv.out_channels, -1)

    def _bm_matmul(self, z: torch.Tensor) -> torch.Tensor:
        """The sample weights as one dense GEMM [B*O, N*T] x [N*T, cells], then the map with invalid cells = bias."""
        batch, t_scale, bias = z.shape[0], self.temporal_scale, self.x_3d_p[0].bias
        valid = torch.matmul(z.reshape(-1, z.shape[-1]), self.weights_dense).reshape(batch, z.shape[1], -1)
        bias = bias.to(valid.dtype)[:, None]
        full = torch.relu(bias).expand(batch, -1, t_scale * t_scale).index_copy(2, self.cells, valid + bias)
        full = torch.relu(full).reshape(batch, -1, t_scale, t_scale)
        return full.contiguous(memory_format=torch.channels_last)

    def _bm_sparse(self, z: torch.Tensor) -> torch.Tensor:
        """The sample weights as CSR products, scattered into a channels-last [B, T*T, O] map (invalid = bias)."""
        batch, t_scale, bias = z.shape[0], self.temporal_scale, self.x_3d_p[0].bias
        valid = _SparseSample.apply(z, self.weights_t_csr, self.weights_csr)
        full = valid.new_zeros(batch, t_scale * t_scale, z.shape[1]).index_copy(1, self.cells, valid)
        full = torch.relu(full + bias.to(full.dtype))
        return full.reshape(batch, t_scale, t_scale, -1).permute(0, 3, 1, 2)


def _reference_keys(state: StateDict, model: nn.Module) -> StateDict:
    """JJBOY's and the Ascend port's checkpoints: same names once `module.` is stripped, plus the frozen mask."""
    return {k: v for k, v in state.items() if k != "sample_mask"}


@register_model(ModelCfg(task="proposals", input_size=(400, 100), checkpoint_filter=_reference_keys))
def bmn(**kwargs) -> BMN:
    """BMN, JJBOY a92c1d7 configuration (4,978,564 parameters at feat_dim=400)."""
    return BMN(**kwargs)
