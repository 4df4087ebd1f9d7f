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
has ONNX operators), "auto" (the default: "matmul" when exported and under CUDA autocast, "sparse" in fp32,
under CPU bf16 autocast "matmul" on CPUs with AMX, else "sparse": a rule on the CPU, never a timing) and "dense"
(the reference's own formulation, for checking). docs/bmn.md has their speeds. The 2-D head runs on a
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
    """y = S^T @ z for one sample's z [T*N, O] and sparse S [T*N, cells]: [cells, O].

    In float32 whatever the autocast dtype: CPU CSR kernels have no bfloat16.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, z: torch.Tensor, weights_t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weights)
        return torch.mm(weights_t, z)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weights,) = ctx.saved_tensors
        return torch.mm(weights, grad.contiguous()), None, None


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
        # rows n*T + t -> t*N + n, the order in which `_conv3d_weight_first` lays out its output
        bins = weights.shape[0] // t_scale
        compact = torch.sparse_coo_tensor(
            torch.stack([(rows % t_scale) * bins + rows // t_scale, compact_cols[cols]]),
            weights.values(),
            (weights.shape[0], len(cells)),
            check_invariants=True,
        ).coalesce()
        if self.bm_impl in ("auto", "sparse"):
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state": known, and tested here
                warnings.simplefilter("ignore", UserWarning)
                self.register_buffer("weights_csr", compact.to_sparse_csr(), persistent=False)
                self.register_buffer("weights_t_csr", compact.t().coalesce().to_sparse_csr(), persistent=False)
        if self.bm_impl in ("auto", "matmul"):
            self.register_buffer("weights_dense_t", compact.t().to_dense(), persistent=False)
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
        return self._proposal_map(self.x_1d_p(features)), start, end

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def _use_gemm(self, z: torch.Tensor) -> bool:
        """Whether the sample weights run as the dense GEMM (else CSR). "auto": the GEMM in exports (it has ONNX
        operators) and under CUDA autocast (tensor cores); CSR in fp32; under CPU autocast the GEMM only where
        the CPU has AMX: the GEMM does 30x the multiply-adds, which only AMX's bf16 tiles repay (docs/speed.md
        has the measurements). A rule, not a timing, so a busy machine and a resumed run decide the same."""
        if self.bm_impl != "auto":
            return self.bm_impl == "matmul"
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting() or torch.jit.is_tracing():
            return True
        if not torch.is_autocast_enabled(z.device.type):
            return False
        if z.device.type != "cpu":
            return True
        return torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.cpu._is_amx_tile_supported()

    def _proposal_map(self, x: torch.Tensor) -> torch.Tensor:
        """BM layer, Conv3d and the 2-D head: [B, 256, T] -> the confidence map [B, 2, T, T]."""
        if self.bm_impl == "dense":
            return self.x_2d_p(self._bm_dense(x))
        z = self._conv3d_weight_first(x)
        if self._use_gemm(z):
            return self._head_2d(self._first_conv(torch.matmul(self.weights_dense_t, z)))
        # CSR: one sample at a time through the first 1x1 conv, so the [cells, 512] maps stay in cache and are
        # reused from the allocator instead of a fresh [B, cells, 512] tensor (faster than one call over the batch)
        return self._head_2d(torch.stack([self._first_conv(self._bm_sparse(sample)) for sample in z]))

    def _bm_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The reference: features x dense sample mask -> [B, 256, N, T, T] -> Conv3d over N -> [B, 512, T, T]."""
        batch, t_scale = x.shape[0], self.temporal_scale
        sampled = torch.matmul(x, self.sample_mask).reshape(batch, x.shape[1], self.num_sample, t_scale, t_scale)
        return self.x_3d_p(sampled).squeeze(2)

    def _conv3d_weight_first(self, x: torch.Tensor) -> torch.Tensor:
        """Z[b, t*N + n, o] = sum_c W[o, c, n] x[b, c, t]: the Conv3d weight [O, C, N, 1, 1] applied first, laid
        out [B, T*N, O] so that it comes out of one GEMM and into the sample weights without a transpose."""
        conv = self.x_3d_p[0]
        weight = conv.weight.squeeze(-1).squeeze(-1).permute(2, 0, 1).reshape(-1, x.shape[1])  # [N*O, C]
        rows = x.transpose(1, 2).reshape(-1, x.shape[1])  # [B*T, C]: one GEMM over the batch, not B (a bmm)
        return torch.mm(rows, weight.t()).view(x.shape[0], -1, conv.out_channels)

    def _bm_sparse(self, z: torch.Tensor) -> torch.Tensor:
        """The Conv3d output (before its bias) of one sample's valid cells, [cells, O]: a CSR product, in float32."""
        return _SparseSample.apply(z, self.weights_t_csr, self.weights_csr)

    def _first_conv(self, valid: torch.Tensor) -> torch.Tensor:
        """Conv3d bias + ReLU, then the head's first (1x1) conv + ReLU, on the valid cells: [..., cells, 512] ->
        [..., cells, 128]. In place where it can: these maps are the largest tensors of the forward, and a fresh
        one costs more than the add."""
        conv3d, conv1 = self.x_3d_p[0], self.x_2d_p[0]
        return nn.functional.linear(valid.add_(conv3d.bias).relu_(), conv1.weight.flatten(1), conv1.bias).relu_()

    def _head_2d(self, cells: torch.Tensor) -> torch.Tensor:
        """The 2-D head after its first conv, computed where its outputs differ: [B, cells, 128] -> [B, 2, T, T].

        Invalid cells (start > end) see the Conv3d bias alone, so the first (1x1) conv of the head gives them
        one constant vector: it runs on the valid cells only and never builds the [B, 512, T, T] map. The
        3x3 convs run in row blocks on the cells within 4 of the diagonal and to its right; cells further below
        see constant input, and their outputs are those of the head on a constant 5x5 map (interior, edges
        and corner: the zero padding of the map's left and bottom borders). Equal to the whole-map computation.
        """
        batch, t_scale = cells.shape[0], self.temporal_scale
        conv3d = self.x_3d_p[0]
        constant = self._first_conv(conv3d.bias.new_zeros(conv3d.out_channels)).to(cells.dtype)  # bias alone
        full = constant.expand(batch, t_scale * t_scale, -1).index_copy(1, self.cells, cells)
        first = full.reshape(batch, t_scale, t_scale, -1).permute(0, 3, 1, 2)  # a channels-last [B, 128, T, T] view
        canonical = self.x_2d_p[2:](constant[None, :, None, None].expand(1, -1, 5, 5))
        blocks = []
        count = max(1, t_scale // _BLOCK_ROWS)
        for r0, r1 in ((t_scale * i // count, t_scale * (i + 1) // count) for i in range(count)):  # plain ints: static
            c0 = max(0, r0 - 4)  # columns left of c0 in these rows are 5 or more below the diagonal
            band = self._head_3x3(first, r0, r1, c0)
            if c0:
                rows = torch.arange(r0, r1, device=band.device)
                row_index = torch.clamp(rows - (t_scale - 5), min=2)  # 2 inside, 3 and 4 on the last two rows
                col_index = torch.clamp(torch.arange(c0, device=band.device), max=2)  # 0, 1 at the left border
                far = canonical[0][:, row_index][:, :, col_index].expand(batch, -1, -1, -1)
                band = torch.cat([far.to(band.dtype), band], dim=3)
            blocks.append(band)
        return torch.cat(blocks, dim=2)

    def _head_3x3(self, first: torch.Tensor, r0: int, r1: int, c0: int) -> torch.Tensor:
        """The head after its 1x1 conv, at rows [r0, r1) and columns [c0, T) of the map: [B, 2, r1 - r0, T - c0]."""
        t_scale = self.temporal_scale
        conv_a, conv_b, conv_out = self.x_2d_p[2], self.x_2d_p[4], self.x_2d_p[6]
        hidden = torch.relu(_conv3x3_window(conv_a, first, max(r0 - 1, 0), min(r1 + 1, t_scale), max(c0 - 1, 0)))
        # conv_b's zero padding where the window meets the map's border (top, bottom, left, and always right)
        hidden = nn.functional.pad(hidden, (int(c0 == 0), 1, int(r0 == 0), int(r1 == t_scale)))
        hidden = hidden.contiguous(memory_format=torch.channels_last)
        hidden = torch.relu(nn.functional.conv2d(hidden, conv_b.weight, conv_b.bias))
        return torch.sigmoid(conv_out(hidden))


_BLOCK_ROWS = 20  # rows per block of the 2-D head: fewer, longer blocks compute more cells below the diagonal


def _conv3x3_window(conv: nn.Conv2d, x: torch.Tensor, r0: int, r1: int, c0: int) -> torch.Tensor:
    """`conv` (3x3, padding 1) at output rows [r0, r1) and columns [c0, T) of the map x, from a crop of it."""
    height, width = x.shape[-2:]
    crop = x[..., max(r0 - 1, 0) : min(r1 + 1, height), max(c0 - 1, 0) :]
    crop = nn.functional.pad(crop, (int(c0 == 0), 1, int(r0 == 0), int(r1 == height)))
    return nn.functional.conv2d(crop.contiguous(memory_format=torch.channels_last), conv.weight, conv.bias)


def _reference_keys(state: StateDict, model: nn.Module) -> StateDict:
    """JJBOY's and the Ascend port's checkpoints: same names once `module.` is stripped, plus the frozen mask."""
    return {k: v for k, v in state.items() if k != "sample_mask"}


@register_model(ModelCfg(task="proposals", input_size=(400, 100), checkpoint_filter=_reference_keys))
def bmn(**kwargs) -> BMN:
    """BMN, JJBOY a92c1d7 configuration (4,978,564 parameters at feat_dim=400)."""
    return BMN(**kwargs)
