"""Small test videos whose frames say which frame they are (PyAV-encoded, so the tests decode real files)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from visionzoo.data.video import write_video

CODECS = {".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def index_frame(i: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A flat frame whose red and green levels encode i (0..255) in steps of 16, robust to lossy coding."""
    frame = np.empty((size[1], size[0], 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = (i % 16) * 16 + 8, (i // 16) * 16 + 8, 128
    return frame


def frame_index(frame: np.ndarray) -> int:
    """The i of `index_frame`, read back from the middle of a decoded frame."""
    red, green = (float(np.median(frame[..., c])) for c in (0, 1))
    return int(red // 16) + 16 * int(green // 16)


def indexed_video(path: Path, frames: int, fps: float = 25.0, rotation: int = 0, times: list[float] | None = None,
                  size: tuple[int, int] = (64, 48)) -> Path:  # fmt: skip
    codec = CODECS[path.suffix]
    return write_video(path, (index_frame(i, size) for i in range(frames)), fps, codec, rotation, times)


def zero_frame_video(path: Path) -> Path:
    """A valid AVI container whose video stream holds no frame."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
        container.mux(stream.encode())
    return path


def panning_frames(count: int, size: tuple[int, int] = (128, 96)) -> list[np.ndarray]:
    """`index_frame`s whose blue channel is a texture panning one pixel a frame: motion an encoder predicts, so
    x264 and mpeg4 (with `bf`) make B-frames, and pictures whose pixels tell a wrong reference apart."""
    yy, xx = np.mgrid[0 : size[1], 0 : size[0] + count]
    texture = ((np.sin(xx / 5.0) * np.cos(yy / 7.0) + np.sin((xx + 2 * yy) / 11.0)) * 60 + 128).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = index_frame(i, size)
        frame[..., 2] = texture[:, i : i + size[0]]
        frames.append(frame)
    return frames
