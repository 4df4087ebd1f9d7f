"""Video files through PyAV (FFmpeg): one frame per fixed-length snippet, as BMN's snippet features need.

A snippet is `snippet_frames` consecutive frames at the video's own frame rate (ActivityNet's TSN features: 16);
snippet i spans frames [i*s, (i+1)*s) and is represented by its centre frame i*s + s//2. Frames are placed by
their timestamps on the constant grid of the video's average frame rate (grid frame g is the frame on screen at
(g + 0.5) / fps after the first one), so a variable-frame-rate video gets snippets of equal duration. Rotation
metadata is honoured, frames are scaled by FFmpeg's libswscale (never in Python) and only the frames a snippet
uses are converted; the decoder runs its own threads. PyAV is the optional extra `visionzoo[video]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from visionzoo.errors import VisionZooError
from visionzoo.files import atomic_write

INSTALL_HINT = "PyAV is not installed; reading videos needs: pip install 'visionzoo[video]'"
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".ogv")
SWS_INTERPOLATION = {"nearest": "POINT", "bilinear": "BILINEAR", "bicubic": "BICUBIC"}  # card name -> libswscale

# (displayed width, displayed height) -> (resized width, resized height, crop left, crop top); the crop is square
# of side `crop`, or the whole resized frame when crop is 0 (thumbnails).
Geometry = Callable[[int, int], tuple[int, int, int, int]]


MAX_FRAMES_PER_DECODED = 8  # grid frames per decoded one a variable frame rate may need
MAX_GAP_S = 600.0  # plus this much time without frames (a screen recording of a still screen)


def require_av() -> Any:
    try:
        import av
    except ImportError:
        raise VisionZooError(INSTALL_HINT) from None
    return av


def is_video_file(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


@dataclass
class VideoMeta:
    """What decoding measured; the columns of `video_info_new.csv` come from here."""

    frames: int  # numFrame: frames on the constant grid of the average frame rate
    fps: float
    seconds: float  # frames / fps
    snippets: int  # L = max(1, frames // snippet_frames): the frames yielded
    width: int  # as displayed (rotation applied)
    height: int
    rotation: int  # degrees counter-clockwise that were applied to the decoded frames


def _open(path: Path, threads: int) -> tuple[Any, Any]:
    """(container, video stream) with frame threading on, or one error line naming the file."""
    av = require_av()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VisionZooError(f"{path}: not a video FFmpeg can read ({_reason(err)})") from None
    if not container.streams.video:
        container.close()
        raise VisionZooError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads in the decoder
    stream.codec_context.thread_count = threads  # 0: FFmpeg picks from the cores
    return container, stream


def _reason(err: Exception) -> str:
    return str(getattr(err, "strerror", None) or err).strip().splitlines()[0][:200]


def _frame_rate(stream: Any, path: Path) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or not math.isfinite(float(rate)) or float(rate) <= 0:
        raise VisionZooError(f"{path}: the video stream has no frame rate")
    return float(rate)


def _rotation(frame: Any) -> int:
    """The display rotation in quarter turns counter-clockwise (0..3) that a player applies."""
    return round((getattr(frame, "rotation", 0) or 0) / 90.0) % 4


def _displayed(frame: Any, stream: Any) -> tuple[int, int]:
    """(width, height) as shown: the sample aspect ratio stretches the width, a quarter turn swaps the sides."""
    sar = stream.codec_context.sample_aspect_ratio
    width = max(1, round(frame.width * float(sar))) if sar and float(sar) > 0 else frame.width
    return (frame.height, width) if _rotation(frame) % 2 else (width, frame.height)


def convert(frame: Any, stream: Any, geometry: Geometry, crop: int, interpolation: str) -> np.ndarray:
    """One decoded frame as displayed, resized by libswscale and cropped: uint8 [H, W, 3] RGB."""
    turns = _rotation(frame)
    new_w, new_h, left, top = geometry(*_displayed(frame, stream))
    scaled_w, scaled_h = (new_h, new_w) if turns % 2 else (new_w, new_h)
    rgb = frame.to_ndarray(
        width=scaled_w, height=scaled_h, format="rgb24", interpolation=SWS_INTERPOLATION[interpolation], threads=1
    )
    if turns:
        rgb = np.rot90(rgb, turns)
    if crop:
        rgb = rgb[top : top + crop, left : left + crop]
    return np.ascontiguousarray(rgb)


T = TypeVar("T")


def decoding(path: Path, threads: int, frames: Callable[[Any, Any], Iterator[T]]) -> Iterator[T]:
    """What `frames(container, stream)` yields of the video at `path`: a corrupt video is one error line naming
    it, and the file is closed however the iteration ends (the one way every decoder opens a video)."""
    av = require_av()
    container, stream = _open(path, threads)
    try:
        yield from frames(container, stream)
    except av.FFmpegError as err:
        raise VisionZooError(f"{path}: corrupt video, decoding failed ({_reason(err)})") from None
    finally:
        container.close()


def check_timeline(path: Path, seconds: float, decoded: int, fps: float) -> None:
    """Refuse timestamps that place the frames decoded so far over far more time than they can fill: what a
    decoder yields follows the timeline, so a jump of 10^6 s would mean millions of snippets or clips. A variable
    frame rate and a still screen of up to `MAX_GAP_S` are within the bound."""
    if not math.isfinite(seconds) or seconds * fps > MAX_FRAMES_PER_DECODED * decoded + MAX_GAP_S * fps:
        raise VisionZooError(
            f"{path}: its timestamps jump to {seconds:.6g} s after {decoded} decoded frames "
            f"(at {fps:g} fps); the video's timing is broken (re-encode it, e.g. ffmpeg -i IN -r {fps:g} OUT)"
        )


class SnippetDecoder:
    """Iterating yields one uint8 [crop, crop, 3] frame per snippet, in order; `meta` is set once it ends.

    `geometry` maps the displayed frame size to the resize and crop of the model's evaluation preprocessing.
    A video shorter than one snippet gets one snippet (its last frame); a partial last snippet is dropped, as
    the snippet count is numFrame // snippet_frames.
    """

    def __init__(
        self,
        path: str | Path,
        snippet_frames: int,
        geometry: Geometry,
        crop: int,
        interpolation: str = "bilinear",
        threads: int = 0,
    ) -> None:
        if snippet_frames < 1:
            raise VisionZooError(f"--snippet-frames {snippet_frames}: must be >= 1")
        if interpolation not in SWS_INTERPOLATION:
            raise VisionZooError(f"interpolation {interpolation!r}: expected one of {', '.join(SWS_INTERPOLATION)}")
        self.path, self.snippet_frames = Path(path), snippet_frames
        self.geometry, self.crop, self.interpolation, self.threads = geometry, crop, interpolation, threads
        self.meta: VideoMeta | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from decoding(self.path, self.threads, self._snippets)

    def _snippets(self, container: Any, stream: Any) -> Iterator[np.ndarray]:
        fps, s = _frame_rate(stream, self.path), self.snippet_frames
        start, previous, previous_time = 0.0, None, 0.0
        ready: np.ndarray | None = None  # held back one snippet: a partial last snippet is not yielded
        converted, decoded = 0, 0
        for frame in container.decode(stream):
            time = float(frame.time) if frame.time is not None else previous_time + 1.0 / fps
            if previous is None:
                start = time
            check_timeline(self.path, time - start, decoded, fps)
            # snippet i's centre frame is the one on screen at start + (i*s + s//2 + 0.5) / fps
            shown = None  # `previous` converted once, however many snippet centres it covers
            while previous is not None and time > start + (converted * s + s // 2 + 0.5) / fps:
                if ready is not None:
                    yield ready
                shown = self._convert(previous, stream) if shown is None else shown
                ready, converted = shown, converted + 1
            previous, previous_time, decoded = frame, time, decoded + 1
        if previous is None:
            raise VisionZooError(f"{self.path}: no video frames (a zero-length video)")
        last = float(previous.duration * previous.time_base) if previous.duration else 1.0 / fps
        check_timeline(self.path, previous_time - start + last, decoded, fps)
        frames = max(1, round((previous_time - start + last) * fps))
        snippets = max(1, frames // s)
        tail = None  # snippets whose centre time is past the last frame's start show the last frame
        for i in range(max(converted - 1, 0), snippets):
            if i == converted - 1:
                yield ready
            else:
                tail = self._convert(previous, stream) if tail is None else tail
                yield tail
        width, height = _displayed(previous, stream)
        self.meta = VideoMeta(frames, fps, frames / fps, snippets, width, height, 90 * _rotation(previous))

    def _convert(self, frame: Any, stream: Any) -> np.ndarray:
        return convert(frame, stream, self.geometry, self.crop, self.interpolation)


def thumbnails(path: str | Path, seconds: list[float], height: int = 72) -> list[np.ndarray]:
    """RGB frames (rotation applied, `height` pixels high) at about the given times: a seek per time, for plots."""
    av = require_av()
    container, stream = _open(Path(path), 0)

    def geometry(width: int, full_height: int) -> tuple[int, int, int, int]:
        return max(2, round(width * height / full_height)) // 2 * 2, height, 0, 0

    images = []
    try:
        for second in seconds:
            container.seek(max(0, int(second / stream.time_base)), stream=stream, backward=True)
            frame = None
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= second:
                    break
            if frame is not None:
                images.append(convert(frame, stream, geometry, 0, "bilinear"))
    except av.FFmpegError as err:
        raise VisionZooError(f"{path}: corrupt video, decoding failed ({_reason(err)})") from None
    finally:
        container.close()
    return images


def encoder_available(codec: str) -> bool:
    av = require_av()
    try:
        av.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


CONTAINER_FORMATS = {".mkv": "matroska", ".m4v": "mp4", ".3gp": "3gp"}  # suffix -> FFmpeg muxer, where they differ


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    rotation: int = 0,
    times: Sequence[float] | None = None,
) -> Path:
    """Encode RGB uint8 [H, W, 3] frames (even sides) with PyAV: the demo data's and the tests' videos.

    `times` gives each frame's timestamp in seconds (a variable frame rate); `rotation` is stored as display
    metadata (degrees counter-clockwise), as phones do.
    """
    av = require_av()
    path = Path(path)
    container_format = CONTAINER_FORMATS.get(path.suffix.lower(), path.suffix.lstrip(".").lower())

    def encode(tmp: Path) -> None:
        container = av.open(str(tmp), "w", format=container_format)  # the temporary name has no suffix to go by
        try:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.pix_fmt = "yuv420p"
            if times is not None:
                stream.time_base = Fraction(1, 1000)
            if rotation:
                stream.set_display_rotation(rotation)
            for i, rgb in enumerate(frames):
                if i == 0:
                    stream.height, stream.width = rgb.shape[:2]
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if times is not None:
                    frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        finally:
            container.close()

    atomic_write(path, encode)
    return path
