"""TV-L1 optical flow for I3D's flow stream, as DeepMind's kinetics-i3d README prescribes.

Flow between consecutive greyscale frames with OpenCV's Dual TV-L1 (its default parameters), clipped to
[-20, 20] pixels and scaled to [-1, 1], channels (x, y): the input `flow_imagenet.pt` was trained on. The
published THUMOS14 flow features were made with CUDA TV-L1 (yjxiong/dense_flow, bound 20, stored as JPEG), so
values agree with them up to those implementations' differences and JPEG rounding.

`cv2.optflow` is in OpenCV's contrib build only: the optional extra `visionzoo[flow]`
(opencv-contrib-python-headless; it conflicts with a plain opencv-python installed beside it).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from visionzoo.errors import VisionZooError

BOUND = 20.0  # pixels; DeepMind's and dense_flow's clip


def require_optflow() -> ModuleType:
    """cv2 with its contrib `optflow` module, or one error line saying how to install it."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is None or not hasattr(cv2, "optflow"):
        raise VisionZooError(
            "TV-L1 flow needs OpenCV's contrib build (cv2.optflow): pip install 'visionzoo[flow]' "
            "(opencv-contrib-python-headless, without a plain opencv-python beside it)"
        )
    return cv2


def tvl1_flow(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 RGB frames -> [2, T - 1, H, W] float32 flow (x, y) in [-1, 1], frame t to t + 1.

    The layout is I3D's flow input without the batch axis: a 16-frame flow clip needs 17 frames.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise VisionZooError(
            f"tvl1_flow takes [T >= 2, H, W, 3] uint8 RGB frames, got {frames.dtype} {list(frames.shape)}"
        )
    cv2 = require_optflow()
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    grey = [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames]
    flows = [tvl1.calc(prev, nxt, None) for prev, nxt in zip(grey[:-1], grey[1:], strict=True)]  # [H, W, 2] each
    flow = np.stack(flows).transpose(3, 0, 1, 2)
    return (np.clip(flow, -BOUND, BOUND) / BOUND).astype(np.float32)
