"""Clips of a user's videos, cut and prepared as a video backbone's published features were (`ClipProtocol`).

Frames are placed on the constant grid of the protocol's rate (its `fps`, else the video's own average rate):
grid frame g is the frame on screen at (g + 0.5) / rate after the first one, so resampling and variable frame
rates are handled the way `data.video.SnippetDecoder` places its snippets. Every grid frame is resized to the
protocol's (H, W) by libswscale (rotation applied), then centre cropped.

Snippet i spans grid frames [i s, (i + 1) s) (s = the protocol's stride), as the BSN rescale and the THUMOS14
reader (`data.thumos14`) assume; its clip is the `num_frames` frames centred on it, frames before the start or
past the end repeating the first or last one (the published extractions start clip i at frame i s instead: their
features sit (num_frames - s) / 2 frames later than their row says). A video has L = max(1, N // s) clips, N grid
frames. Flow clips are TV-L1 (`data.optical_flow`) between consecutive grid frames of the resized, uncropped
frames, cropped after, each pair computed once however many clips share it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from visionzoo.data.optical_flow import tvl1_flow
from visionzoo.data.video import PickedFrames, Timeline, VideoMeta, _displayed, _rotation, convert
from visionzoo.errors import VisionZooError
from visionzoo.models.registry import ClipProtocol


def scaled_protocol(protocol: ClipProtocol, crop: int) -> ClipProtocol:
    """The protocol at another crop side, its resize scaled alike (a cheaper run, or a tiny test model)."""
    if crop == protocol.crop:
        return protocol
    h, w = protocol.resize
    return replace(protocol, resize=(round(h * crop / protocol.crop), round(w * crop / protocol.crop)), crop=crop)


def crop_offsets(protocol: ClipProtocol) -> tuple[int, int]:
    """(top, left) of the centre crop, rounded as torchvision's CenterCrop (TSP's 29.5 -> 30)."""
    (h, w), crop = protocol.resize, protocol.crop
    if crop > min(h, w):
        raise VisionZooError(f"clip protocol: crop {crop} is larger than the resized frame {h} x {w}")
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def clip_start(index: int, protocol: ClipProtocol) -> int:
    """First grid frame of clip `index`: the clip is centred on its snippet [i s, (i + 1) s)."""
    return index * protocol.stride + protocol.stride // 2 - protocol.num_frames // 2


def grid_picks(frames: Iterable[Any], own: float, rate: float, path: Path) -> Generator[Any, None, tuple[int, Any]]:
    """The frame on screen at each point of the grid of `rate` fps, in order; returns (grid frames, last frame).
    `frames` are decoded or `Planned` ones at the video's own average rate `own` (`data.video.PickedFrames`)."""
    timeline = Timeline(frames, own, path)
    previous, grid = None, 0
    for frame, time, start in timeline:
        while previous is not None and time > start + (grid + 0.5) / rate:
            yield previous
            grid += 1
        previous = frame
    total = max(1, round(timeline.seconds * rate), grid)
    for _ in range(grid, total):
        yield timeline.last
    return total, timeline.last


class GridFrames:
    """Iterating yields the resized, uncropped uint8 [H, W, 3] frames on the protocol's time grid; `meta` (frames
    and fps at the grid's rate) is set once it ends. `skip_unused=False` decodes every frame (the tests' reference).
    """

    def __init__(self, path: Path, protocol: ClipProtocol, threads: int = 0, skip_unused: bool = True) -> None:
        self.path, self.protocol, self.threads, self.skip_unused = Path(path), protocol, threads, skip_unused
        self.meta: VideoMeta | None = None
        self.decoded = 0  # frames the decoder returned (fewer than the video's where it skipped some)

    def __iter__(self) -> Iterator[np.ndarray]:
        h, w = self.protocol.resize
        frames = PickedFrames(
            self.path,
            self.threads,
            lambda decoded, own: grid_picks(decoded, own, self.protocol.fps or own, self.path),
            lambda frame, stream: convert(frame, stream, lambda *_: (w, h, 0, 0), 0, "bilinear"),
            self.skip_unused,
        )
        yield from frames
        self.decoded, total, rate = frames.decoded, frames.total, self.protocol.fps or frames.fps
        width, height = _displayed(frames.last, frames.stream)
        snippets = max(1, total // self.protocol.stride)
        self.meta = VideoMeta(total, rate, total / rate, snippets, width, height, 90 * _rotation(frames.last))


class _ClipCutter:
    """Clips of one video from its grid frames as they arrive, keeping only the frames later clips need."""

    def __init__(self, protocols: tuple[ClipProtocol, ...]) -> None:
        self.protocols, self.cut = protocols, protocols[0]
        self.flow = any(p.modality == "flow" for p in protocols)
        self.top, self.left = crop_offsets(self.cut)
        self.frames: dict[int, np.ndarray] = {}
        self.flows: dict[int, np.ndarray] = {}
        self.count, self.next_clip = 0, 0

    def add(self, frame: np.ndarray) -> None:
        self.frames[self.count] = frame
        self.count += 1

    def ready(self) -> Iterator[np.ndarray]:
        """Clips whose frames have all arrived (and whose snippet is whole, so it exists whatever N is)."""
        p = self.cut
        while True:
            i = self.next_clip
            need = max(clip_start(i, p) + p.num_frames - 1 + self.flow, (i + 1) * p.stride - 1)
            if need >= self.count:
                return
            yield self._clip(i, self.count)

    def rest(self) -> Iterator[np.ndarray]:
        """The clips left once the video has ended (frames past the end repeat the last one)."""
        while self.next_clip < max(1, self.count // self.cut.stride):
            yield self._clip(self.next_clip, self.count)

    def _clip(self, i: int, total: int) -> np.ndarray:
        p, crop = self.cut, self.cut.crop
        frames = [min(max(j, 0), total - 1) for j in range(clip_start(i, p), clip_start(i, p) + p.num_frames + 1)]
        parts = []
        for protocol in self.protocols:
            if protocol.modality == "flow":
                clip = np.stack([self._flow(a, b) for a, b in zip(frames[:-1], frames[1:], strict=True)], axis=1)
            else:
                rgb = np.stack([self.frames[j] for j in frames[:-1]]).astype(np.float32) / 255.0
                clip = rgb[:, self.top : self.top + crop, self.left : self.left + crop].transpose(3, 0, 1, 2)
            mean = np.asarray(protocol.mean, np.float32)[:, None, None, None]
            std = np.asarray(protocol.std, np.float32)[:, None, None, None]
            parts.append((clip - mean) / std)
        self.next_clip += 1
        first = max(clip_start(self.next_clip, p), 0)
        self.frames = {j: f for j, f in self.frames.items() if j >= first or j == total - 1}
        self.flows = {j: f for j, f in self.flows.items() if j >= first}
        return np.concatenate(parts).astype(np.float32)

    def _flow(self, a: int, b: int) -> np.ndarray:
        """[2, crop, crop] flow from grid frame a to b (zero where the video has ended: b == a)."""
        crop = self.cut.crop
        if a == b:
            return np.zeros((2, crop, crop), np.float32)
        if a not in self.flows:
            flow = tvl1_flow(np.stack([self.frames[a], self.frames[b]]))[:, 0]
            self.flows[a] = flow[:, self.top : self.top + crop, self.left : self.left + crop]
        return self.flows[a]


class VideoClips(IterableDataset):
    """Items (video index, clips float32 [n, C, T, crop, crop], end), as `data.video_snippets.VideoSnippets`:
    end is None mid-video, the VideoMeta at its end, or the error line of a video that cannot be read.

    `protocols` are the streams' (one, or RGB then flow for two-stream I3D): they share the cutting (frames,
    stride, fps, resize, crop); their channels are concatenated in order, each normalised by its mean/std.
    """

    def __init__(self, videos: list[tuple[str, Path]], protocols: tuple[ClipProtocol, ...], chunk: int,
                 threads: int) -> None:  # fmt: skip
        cutting = {(p.num_frames, p.stride, p.fps, p.resize, p.crop) for p in protocols}
        if len(cutting) != 1:
            raise VisionZooError("streams of one feature must cut their clips alike (frames, stride, fps, size)")
        self.videos, self.protocols, self.chunk, self.threads = videos, protocols, chunk, threads
        self.channels = sum(len(p.mean) for p in protocols)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, VideoMeta | str | None]]:
        info = get_worker_info()
        p = self.protocols[0]
        empty = np.zeros((0, self.channels, p.num_frames, p.crop, p.crop), np.float32)
        for index in range(info.id if info else 0, len(self.videos), info.num_workers if info else 1):
            frames = GridFrames(self.videos[index][1], p, self.threads)
            cutter, clips = _ClipCutter(self.protocols), []
            try:
                for frame in frames:
                    cutter.add(frame)
                    for clip in cutter.ready():
                        clips.append(clip)
                        if len(clips) == self.chunk:
                            yield index, np.stack(clips), None
                            clips = []
                clips += list(cutter.rest())
            except VisionZooError as err:
                yield index, empty, str(err)
                continue
            for begin in range(0, len(clips), self.chunk):
                yield index, np.stack(clips[begin : begin + self.chunk]), None
            yield index, empty, frames.meta
