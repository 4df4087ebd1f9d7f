"""FLOP counts behind the MFU that `visionzoo bench` reports: torch's counter with our two corrections."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from visionzoo.engine.flops import count_flops


def _conv_macs(conv: nn.Conv2d, x: torch.Tensor) -> int:
    out_h, out_w = conv(x).shape[-2:]
    k_h, k_w = conv.kernel_size
    return x.shape[0] * conv.out_channels * (conv.in_channels // conv.groups) * k_h * k_w * out_h * out_w


@pytest.mark.parametrize("groups", [1, 4, 64])
def test_conv_backward_costs_twice_the_forward_whatever_the_groups(groups: int) -> None:
    conv = nn.Conv2d(64, 64, 3, padding=1, groups=groups)
    x = torch.randn(2, 64, 14, 14, requires_grad=True)
    forward = count_flops(lambda: conv(x))
    assert forward == 2 * _conv_macs(conv, x)
    assert count_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_frozen_first_conv_counts_its_weight_gradient_only() -> None:
    conv = nn.Conv2d(3, 16, 3, groups=1)
    x = torch.randn(2, 3, 10, 10)  # no gradient for the input: only the weight's
    forward = count_flops(lambda: conv(x))
    assert count_flops(lambda: conv(x).sum().backward()) == 2 * forward


def test_sparse_matmul_counts_stored_values_only() -> None:
    dense = torch.zeros(50, 40)
    dense[torch.arange(50), torch.arange(50) % 40] = 1.0
    dense[3, 7] = 2.0
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state", once per process
        warnings.simplefilter("ignore")
        sparse = dense.to_sparse_csr()
    rhs = torch.randn(40, 8)
    nnz = int((dense != 0).sum())
    assert count_flops(lambda: torch.mm(sparse, rhs)) == 2 * nnz * 8
    assert count_flops(lambda: torch.mm(dense, rhs)) == 2 * 50 * 40 * 8
