"""Decoding a user's videos for feature extraction: which videos, which shard, and their snippets' frames.

A snippet is `snippet_frames` consecutive frames at the video's own rate; its centre frame is decoded, scaled as
the backbone's evaluation prepares an image (`data.transforms.input_geometry`) and handed on as uint8. What runs
the backbone on them is `export.feature_extractor`.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from visionzoo.data.transforms import input_geometry
from visionzoo.data.video import SnippetDecoder, VideoMeta, is_video_file
from visionzoo.errors import VisionZooError
from visionzoo.files import expand_inputs


def list_videos(inputs: list[Path]) -> list[tuple[str, Path]]:
    """(name, file) of every video given or found in a folder (recursively), sorted by name; a name is a stem."""
    videos: dict[str, Path] = {}
    for path in expand_inputs(inputs, is_video_file, "video files"):
        if path.stem in videos and videos[path.stem].resolve() != path.resolve():
            raise VisionZooError(f"{path}: same name as {videos[path.stem]}; video names (file stems) must be unique")
        videos[path.stem] = path
    return sorted(videos.items())


def parse_shard(text: str | None) -> tuple[int, int]:
    """(K, N) from `--shard K/N` (1 <= K <= N), else torchrun's RANK + 1 / WORLD_SIZE, else (1, 1)."""
    if text is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return int(os.environ.get("RANK", "0")) + 1, world
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise VisionZooError(f"--shard {text}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
    return int(match[1]), int(match[2])


def in_shard(name: str, shard: tuple[int, int]) -> bool:
    """A video's shard depends on its name only, so every process agrees whatever list it was given."""
    return zlib.crc32(name.encode()) % shard[1] == shard[0] - 1


class VideoSnippets(IterableDataset):
    """Items (video index, frames uint8 [n, S, S, 3], end): end is None mid-video, the VideoMeta at its end, or
    the error line of a video that cannot be read. Loader workers take every `num_workers`-th video."""

    def __init__(self, videos: list[tuple[str, Path]], snippet_frames: int, preprocessing: dict, chunk: int,
                 threads: int) -> None:  # fmt: skip
        self.videos, self.snippet_frames, self.preprocessing = videos, snippet_frames, preprocessing
        self.chunk, self.threads = chunk, threads

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, VideoMeta | str | None]]:
        info = get_worker_info()
        prep, size = self.preprocessing, int(self.preprocessing["img_size"])
        empty = np.zeros((0, size, size, 3), np.uint8)
        for index in range(info.id if info else 0, len(self.videos), info.num_workers if info else 1):
            decoder = SnippetDecoder(
                self.videos[index][1],
                self.snippet_frames,
                lambda w, h: input_geometry(prep, w, h),
                size,
                prep["interpolation"],
                self.threads,
            )
            frames: list[np.ndarray] = []
            try:
                for frame in decoder:
                    frames.append(frame)
                    if len(frames) == self.chunk:
                        yield index, np.stack(frames), None
                        frames = []
            except VisionZooError as err:
                yield index, empty, str(err)
                continue
            yield index, np.stack(frames) if frames else empty, decoder.meta
