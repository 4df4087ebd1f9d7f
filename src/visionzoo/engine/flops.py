"""Parameter and FLOP counts with torch's own FLOP counter, corrected for sparse matmuls and grouped convs.

torch's counter prices every matmul by its shapes, so BMN's sparse sample-weight product (3 % of its [cells,
T*N] matrix stored) would count as dense, 3x the network's real work. The correction prices a sparse x dense
product at 2 x stored values x the dense operand's columns. Its convolution backward prices the weight gradient
as if the conv were not grouped (a depthwise conv's backward at `channels` times its real work, which made
GhostNet's training step count 6x its FLOPs); here each gradient costs what the forward conv costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

_MATMULS = (torch.ops.aten.mm, torch.ops.aten.addmm)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _SparseMatmulCorrection(TorchDispatchMode):
    """The difference between a sparse matmul's real FLOPs and what FlopCounterMode counts for its shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func.overloadpacket in _MATMULS:
            a, b = args[-2], args[-1]
            dense_flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
            if a.layout != torch.strided:
                self.flops += 2 * _stored(a) * b.shape[1] - dense_flops
            elif b.layout != torch.strided:
                self.flops += 2 * _stored(b) * a.shape[0] - dense_flops
        return func(*args, **(kwargs or {}))


def _conv_backward_flops(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    _groups: int,
    output_mask: list[bool],
    **kwargs: Any,
) -> int:
    """Each gradient asked for (input, weight) is a convolution with the forward's multiply-adds."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def _stored(sparse: torch.Tensor) -> int:
    return sparse._nnz() if sparse.layout == torch.sparse_coo else sparse.values().numel()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matmuls and convolutions that `fn()` runs (forward, and backward if it calls it)."""
    correction = _SparseMatmulCorrection()
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter, correction:
        fn()
    return counter.get_total_flops() + correction.flops


@torch.no_grad()
def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on `inputs` (FLOPs / 2, matmuls and convolutions)."""
    was_training = model.training
    model.eval()
    flops = count_flops(lambda: model(*inputs))
    model.train(was_training)
    return flops // 2
