"""One way to compare numbers that are mathematically equal but computed in another order.

Element-wise tolerances fail on the few elements where large terms cancel: their absolute error is that of the
large terms, their value is near zero, and which elements those are depends on the summation order of the
kernels the CPU dispatches to (AVX2, AVX-512, AMX). A norm-wise relative error, ||actual - expected|| /
||expected||, measures the error against the size of the whole tensor instead, and does not depend on luck.

The tolerances below are set from what float rounding can produce, far below what a real mistake produces:
- FP32: a float32 sum of n random-sign terms is off by about eps (6e-8) x sqrt(n): 6e-6 at n = 10^4, the
  longest sums in these tests (a conv weight's gradient sums over batch x positions); 2e-5 leaves 3x room. The
  worst seen is 3.3e-6 (a BMN 2-D conv weight gradient against float64). The fp32 reference transcription
  itself reaches 4.5e-5 under oneDNN's AVX2 Conv3d backward, which is why the BMN oracle runs in float64.
  A real mistake lands far above: one of BMN's 479,238 sample weights 10 % off moves a gradient by 4.4e-4,
  a dropped bias by far more (tests/test_bmn_model.py keeps both failing).
- BF16: 8 mantissa bits (relative step 2^-8 = 0.4 %) compounded over a network's layers.
Exact claims (bitwise resume, the sample mask bit for bit, the toolkit's evaluation) are compared exactly.
"""

from __future__ import annotations

import numpy as np
import torch

FP32 = 2e-5
BF16 = 2e-2


def normwise_error(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """||actual - expected||_2 / ||expected||_2 in float64 (0 when both are zero)."""
    actual = torch.as_tensor(np.asarray(actual) if isinstance(actual, np.ndarray) else actual).double()
    expected = torch.as_tensor(np.asarray(expected) if isinstance(expected, np.ndarray) else expected).double()
    assert actual.shape == expected.shape, f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}"
    scale = float(expected.norm())
    difference = float((actual - expected).norm())
    return difference / scale if scale > 0 else difference


def assert_close(actual, expected, rtol: float = FP32, what: str = "") -> None:
    """Norm-wise relative error at most `rtol` (see the module docstring for the levels)."""
    error = normwise_error(actual, expected)
    assert error <= rtol, f"{what or 'value'}: norm-wise relative error {error:.3e} > {rtol:.0e}"
