"""TV-L1 flow for I3D's flow stream: direction, scale to [-1, 1], layout, and the missing-extra error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from visionzoo.data.optical_flow import tvl1_flow
from visionzoo.errors import VisionZooError


def _moving_texture(shift_x: int, shift_y: int, frames: int = 3) -> np.ndarray:
    """A smooth random grey texture moving by (shift_x, shift_y) pixels a frame, as [T, H, W, 3] uint8 RGB."""
    rng = np.random.default_rng(0)
    noise = rng.random((96, 112))
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    smooth = np.apply_along_axis(np.convolve, 0, noise, kernel, "same")
    smooth = np.apply_along_axis(np.convolve, 1, smooth, kernel, "same")
    smooth = (255 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.uint8)
    shots = [np.roll(smooth, (i * shift_y, i * shift_x), axis=(0, 1))[16:64, 16:80] for i in range(frames)]
    return np.repeat(np.stack(shots)[..., None], 3, axis=-1)


@pytest.mark.parametrize(("shift_x", "shift_y"), [(2, 0), (0, -3)])
def test_flow_is_motion_in_pixels_over_20(shift_x: int, shift_y: int) -> None:
    pytest.importorskip("cv2")
    flow = tvl1_flow(_moving_texture(shift_x, shift_y))
    assert flow.shape == (2, 2, 48, 64) and flow.dtype == np.float32  # (x, y), T - 1 flows
    inner = flow[:, :, 8:-8, 8:-8]
    assert np.median(inner[0]) == pytest.approx(shift_x / 20, abs=0.01)
    assert np.median(inner[1]) == pytest.approx(shift_y / 20, abs=0.01)
    assert np.abs(flow).max() <= 1.0


def test_bad_frames_are_one_error_line() -> None:
    with pytest.raises(VisionZooError, match=r"uint8 RGB frames, got float64 \[1, 8, 8, 3\]"):
        tvl1_flow(np.zeros((1, 8, 8, 3)))


def test_missing_opencv_contrib_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` raises ImportError
    with pytest.raises(VisionZooError, match=r"^TV-L1 flow needs OpenCV's contrib build.*visionzoo\[flow\]"):
        tvl1_flow(np.zeros((2, 8, 8, 3), dtype=np.uint8))
