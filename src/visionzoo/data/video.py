"""Video files through PyAV (FFmpeg): one frame per fixed-length snippet, as BMN's snippet features need.

A snippet is `snippet_frames` consecutive frames at the video's own frame rate (ActivityNet's TSN features: 16);
snippet i spans frames [i*s, (i+1)*s) and is represented by its centre frame i*s + s//2. Frames are placed by
their timestamps on the constant grid of the video's average frame rate (grid frame g is the frame on screen at
(g + 0.5) / fps after the first one), so a variable-frame-rate video gets snippets of equal duration. Rotation
metadata is honoured, frames are scaled by FFmpeg's libswscale (never in Python) and only the frames a snippet
uses are converted; the non-reference frames it does not use are not even decoded (`PickedFrames`); the decoder
runs its own threads. PyAV is the optional extra `visionzoo[video]`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
R = TypeVar("R")


@contextmanager
def opened(path: Path, threads: int) -> Iterator[tuple[Any, Any]]:
    """(container, video stream) of the video at `path`: a corrupt video is one error line naming it, and the file
    is closed however the block ends (the one way every decoder opens a video)."""
    av = require_av()
    container, stream = _open(path, threads)
    try:
        yield container, stream
    except av.FFmpegError as err:
        raise VisionZooError(f"{path}: corrupt video, decoding failed ({_reason(err)})") from None
    finally:
        container.close()


def within_timeline(seconds: float, decoded: int, fps: float) -> bool:
    """Whether `decoded` frames can fill `seconds`: a variable frame rate and a still screen of up to `MAX_GAP_S`
    can, a jump of 10^6 s cannot (it would mean millions of snippets or clips)."""
    return math.isfinite(seconds) and seconds * fps <= MAX_FRAMES_PER_DECODED * decoded + MAX_GAP_S * fps


def check_timeline(path: Path, seconds: float, decoded: int, fps: float) -> None:
    """Refuse timestamps that place the frames decoded so far over far more time than they can fill: what a
    decoder yields follows the timeline, so the work would have no bound."""
    if not within_timeline(seconds, decoded, fps):
        raise VisionZooError(
            f"{path}: its timestamps jump to {seconds:.6g} s after {decoded} decoded frames "
            f"(at {fps:g} fps); the video's timing is broken (re-encode it, e.g. ffmpeg -i IN -r {fps:g} OUT)"
        )


def last_seconds(frame: Any, fps: float) -> float:
    """How long the last frame stays on screen: its duration, else one frame at the average rate."""
    return float(frame.duration * frame.time_base) if frame.duration else 1.0 / fps


class Timeline:
    """(frame, time, start) of each of `frames` (presentation order; a frame without pts 1/fps after the one
    before), the time since the first frame checked against the bound as it goes; `last` and `seconds` (from the
    first frame to the end of the last one) are set once it ends, or a video without frames is refused."""

    def __init__(self, frames: Iterable[Any], fps: float, path: Path) -> None:
        self.frames, self.fps, self.path = frames, fps, path
        self.last: Any = None
        self.seconds = 0.0

    def __iter__(self) -> Iterator[tuple[Any, float, float]]:
        start, previous, previous_time, decoded = 0.0, None, 0.0, 0
        for frame in self.frames:
            time = float(frame.time) if frame.time is not None else previous_time + 1.0 / self.fps
            if previous is None:
                start = time
            check_timeline(self.path, time - start, decoded, self.fps)
            yield frame, time, start
            previous, previous_time, decoded = frame, time, decoded + 1
        if previous is None:
            raise VisionZooError(f"{self.path}: no video frames (a zero-length video)")
        self.last, self.seconds = previous, previous_time - start + last_seconds(previous, self.fps)
        check_timeline(self.path, self.seconds, decoded, self.fps)


def snippet_picks(frames: Iterable[Any], fps: float, s: int, path: Path) -> Generator[Any, None, tuple[int, Any]]:
    """The frame on screen at each snippet's centre, in order; returns (frames on the grid, last frame).

    `frames` are decoded frames, or `Planned` ones, in presentation order: the same rules choose what a decode
    of every frame yields and which frames a decode that skips the others must not skip. Snippet i's centre
    frame is the one on screen at start + (i*s + s//2 + 0.5) / fps; a snippet is held back until the next one
    is known, so a partial last snippet is not yielded; snippets whose centre is past the last frame's start
    show the last frame.
    """
    timeline = Timeline(frames, fps, path)
    previous, ready, converted = None, None, 0
    for frame, time, start in timeline:
        while previous is not None and time > start + (converted * s + s // 2 + 0.5) / fps:
            if ready is not None:
                yield ready
            ready, converted = previous, converted + 1
        previous = frame
    total = max(1, round(timeline.seconds * fps))
    for i in range(max(converted - 1, 0), max(1, total // s)):
        yield ready if i == converted - 1 else timeline.last
    return total, timeline.last


# picks(frames in presentation order, the video's average frame rate): the frames shown, in order, and
# (frames on the rule's grid, the last frame)
Rule = Callable[[Iterable[Any], float], Generator[Any, None, tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Planned:
    """A frame as its packet announces it, before any decoding: what a rule reads of a decoded frame."""

    pts: int
    time: float  # as PyAV's VideoFrame.time computes it, so the rules compare the same floats
    duration: int
    time_base: Fraction


@dataclass
class _Plan:
    pts: np.ndarray  # every frame's, in presentation order
    picks: np.ndarray  # the pts of each frame the rule yields, in its order
    needed: np.ndarray  # sorted pts of the frames to decode: the picks and the last frame (the video's size)
    time_base: Fraction
    total: int  # what the rule returned
    last_seconds: float

    def time(self, index: int) -> float:
        """Frame `index`'s time as PyAV computes a decoded frame's."""
        return float(self.pts[index]) * self.time_base.numerator / self.time_base.denominator


MAX_PLANNED_FRAMES = 1 << 22  # packets a plan holds (8 bytes each; 39 h at 30 fps): a longer video decodes all


class PickedFrames:
    """Iterating yields `convert(frame, stream)` of each frame `rule` picks, in its order (a frame converted once
    however many picks it has); `total`, `fps`, `last` (the last frame) and `stream` are set once it ends.

    FFmpeg skips a non-reference frame (`skip_frame` NONREF) without changing another frame's pixels, as no frame
    predicts from it; with B-frames that is often a third of the frames or more, and a snippet needs one frame in
    16. So a demux pass (no decoding) first reads every frame's timestamp from its packet, the rule picks frames on
    that timeline, and the decode skips the non-reference frames it did not pick: what is yielded is what a decode
    of every frame yields. Where the packets cannot say (no timestamps, a timeline the bound refuses, no reordered
    frames, hence no B-frames to skip) every frame is decoded, as when a decoded frame contradicts the plan (then
    the rest is decoded again without skipping).
    """

    def __init__(self, path: Path, threads: int, rule: Rule, convert: Callable[[Any, Any], np.ndarray],
                 skip_unused: bool = True) -> None:  # fmt: skip
        self.path, self.threads, self.rule, self.convert, self.skip_unused = path, threads, rule, convert, skip_unused
        self.total, self.fps, self.last, self.stream = 0, 0.0, None, None
        self.decoded = 0  # frames the decoder returned: fewer than the video's where it skipped some

    def __iter__(self) -> Iterator[np.ndarray]:
        shown: tuple[Any, np.ndarray] | None = None
        for frame in self._picks():
            if shown is None or shown[0] is not frame:
                shown = frame, self.convert(frame, self.stream)
            yield shown[1]

    def _picks(self) -> Iterator[Any]:
        plan = self._plan() if self.skip_unused else None
        done = 0
        if plan is not None:
            with opened(self.path, self.threads) as (container, self.stream):
                self.fps = _frame_rate(self.stream, self.path)
                for frame in self._skipping(container, self.stream, plan):
                    yield frame
                    done += 1
            if self.last is not None:
                return
        with opened(self.path, self.threads) as (container, self.stream):
            self.fps = _frame_rate(self.stream, self.path)
            picks = self.rule(self._counted(container.decode(self.stream)), self.fps)
            self.total, self.last = yield from _after(picks, done)

    def _counted(self, frames: Iterable[Any]) -> Iterator[Any]:
        for frame in frames:
            self.decoded += 1
            yield frame

    def _plan(self) -> _Plan | None:
        """The rule's picks on the timeline the packets announce, or None where skipping cannot be planned or
        cannot help."""
        with opened(self.path, 1) as (container, stream):
            fps = _frame_rate(stream, self.path)
            timeline = _timeline(container, stream, fps)
        if timeline is None:
            return None
        pts, durations, time_base = timeline
        num, den = time_base.numerator, time_base.denominator
        frames = (Planned(int(p), float(p) * num / den, int(d), time_base) for p, d in zip(pts, durations, strict=True))
        picks = array("q")
        total, last = _collect(self.rule(frames, fps), picks)
        picked = np.frombuffer(picks, np.int64)
        needed = np.unique(np.append(picked, last.pts))
        if len(needed) == len(pts):
            return None
        return _Plan(pts, picked, needed, time_base, total, last_seconds(last, fps))

    def _skipping(self, container: Any, stream: Any, plan: _Plan) -> Iterator[Any]:
        """The picked frames, each decoded frame checked against the plan and its picks held until the next one
        agrees too (a frame the plan missed changes what its predecessor shows); `last` and `total` are set only
        when every pick came."""
        codec, mode = stream.codec_context, ""
        following, k, last, held = 0, 0, None, 0  # the next planned frame, the next pick; picks of `last` held
        for packet in container.demux(stream):
            wanted = "DEFAULT" if packet.pts is None or _holds(plan.needed, packet.pts) else "NONREF"
            if wanted != mode:
                codec.skip_frame = mode = wanted
            for frame in packet.decode():
                self.decoded += 1
                j = -1 if frame.pts is None else int(np.searchsorted(plan.pts, frame.pts))
                if j < following or j == len(plan.pts) or plan.pts[j] != frame.pts or frame.time != plan.time(j):
                    return  # a frame the packets did not announce
                if k < len(plan.picks) and plan.picks[k] < frame.pts:
                    return  # a picked frame that did not come
                for _ in range(held):
                    yield last
                held = 0
                while k < len(plan.picks) and plan.picks[k] == frame.pts:
                    held, k = held + 1, k + 1
                following, last = j + 1, frame
        if k == len(plan.picks) and following == len(plan.pts) and last_seconds(last, self.fps) == plan.last_seconds:
            for _ in range(held):
                yield last
            self.total, self.last = plan.total, last


def _timeline(container: Any, stream: Any, fps: float) -> tuple[np.ndarray, np.ndarray, Fraction] | None:
    """(pts, durations) of every frame in presentation order and the time base, from the packets alone; None
    where they cannot say (a packet without pts, two with one, past `MAX_PLANNED_FRAMES` or the timeline bound:
    the demux pass stops there) or where no frame is reordered or disposable (no B-frames: nothing to skip)."""
    pts, durations = array("q"), array("q")
    low = high = 0
    reordered = False
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # the flush packet; frames the decoder drops (edit lists)
            continue
        if packet.pts is None or len(pts) == MAX_PLANNED_FRAMES:
            return None
        if not pts:
            low = high = packet.pts
        reordered |= packet.pts < high or packet.is_disposable
        low, high = min(low, packet.pts), max(high, packet.pts)
        pts.append(packet.pts)
        durations.append(packet.duration or 0)
        if not within_timeline(float((high - low) * stream.time_base), len(pts), fps):
            return None
    order = np.argsort(np.frombuffer(pts, np.int64), kind="stable")
    presented = np.frombuffer(pts, np.int64)[order]
    if not reordered or (np.diff(presented) <= 0).any():
        return None
    return presented, np.frombuffer(durations, np.int64)[order], stream.time_base


def _holds(sorted_values: np.ndarray, value: int) -> bool:
    i = int(np.searchsorted(sorted_values, value))
    return i < len(sorted_values) and sorted_values[i] == value


def _collect(picks: Generator[Any, None, R], into: array) -> R:
    """Run a rule over planned frames, keeping the pts of its picks; its return value."""
    while True:
        try:
            into.append(next(picks).pts)
        except StopIteration as stop:
            return stop.value


def _after(picks: Generator[T, None, R], count: int) -> Generator[T, None, R]:
    """What `picks` yields after its first `count` items (those already yielded), and what it returns."""
    while True:
        try:
            item = next(picks)
        except StopIteration as stop:
            return stop.value
        if count:
            count -= 1
        else:
            yield item


class SnippetDecoder:
    """Iterating yields one uint8 [crop, crop, 3] frame per snippet, in order; `meta` is set once it ends.

    `geometry` maps the displayed frame size to the resize and crop of the model's evaluation preprocessing.
    A video shorter than one snippet gets one snippet (its last frame); a partial last snippet is dropped, as
    the snippet count is numFrame // snippet_frames. `skip_unused=False` decodes every frame (what the tests and
    benchmarks compare against).
    """

    def __init__(
        self,
        path: str | Path,
        snippet_frames: int,
        geometry: Geometry,
        crop: int,
        interpolation: str = "bilinear",
        threads: int = 0,
        skip_unused: bool = True,
    ) -> None:
        if snippet_frames < 1:
            raise VisionZooError(f"--snippet-frames {snippet_frames}: must be >= 1")
        if interpolation not in SWS_INTERPOLATION:
            raise VisionZooError(f"interpolation {interpolation!r}: expected one of {', '.join(SWS_INTERPOLATION)}")
        self.path, self.snippet_frames = Path(path), snippet_frames
        self.geometry, self.crop, self.interpolation, self.threads = geometry, crop, interpolation, threads
        self.skip_unused = skip_unused
        self.meta: VideoMeta | None = None
        self.decoded = 0  # frames the decoder returned (fewer than the video's where it skipped some)

    def __iter__(self) -> Iterator[np.ndarray]:
        s = self.snippet_frames
        frames = PickedFrames(
            self.path,
            self.threads,
            lambda decoded, fps: snippet_picks(decoded, fps, s, self.path),
            lambda frame, stream: convert(frame, stream, self.geometry, self.crop, self.interpolation),
            self.skip_unused,
        )
        yield from frames
        self.decoded = frames.decoded
        width, height = _displayed(frames.last, frames.stream)
        meta = frames.total, frames.fps, frames.total / frames.fps, max(1, frames.total // s)
        self.meta = VideoMeta(*meta, width, height, 90 * _rotation(frames.last))


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
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB uint8 [H, W, 3] frames (even sides) with PyAV: the demo data's and the tests' videos.

    `times` gives each frame's timestamp in seconds (a variable frame rate); `rotation` is stored as display
    metadata (degrees counter-clockwise), as phones do; `options` are the encoder's (e.g. {"bf": "2"}: B-frames).
    """
    av = require_av()
    path = Path(path)
    container_format = CONTAINER_FORMATS.get(path.suffix.lower(), path.suffix.lstrip(".").lower())

    def encode(tmp: Path) -> None:
        container = av.open(str(tmp), "w", format=container_format)  # the temporary name has no suffix to go by
        try:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
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
