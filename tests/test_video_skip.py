"""Decoding only what a backbone uses: the non-reference frames no pick needs are skipped (`PickedFrames`), and
what comes out is bit-identical to a decode of every frame, for snippets' centre frames and clips' grid frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from video_files import panning_frames

from visionzoo.errors import VisionZooError

av = pytest.importorskip("av")

from visionzoo.data import video  # noqa: E402
from visionzoo.data.video import SnippetDecoder, encoder_available, write_video  # noqa: E402
from visionzoo.data.video_clips import GridFrames  # noqa: E402
from visionzoo.models.registry import ClipProtocol  # noqa: E402

Decoder = SnippetDecoder | GridFrames


def whole(width: int, height: int) -> tuple[int, int, int, int]:
    return width, height, 0, 0


def snippets(path: Path, snippet_frames: int, threads: int = 0) -> Callable[[bool], Decoder]:
    return lambda skip: SnippetDecoder(path, snippet_frames, whole, 0, threads=threads, skip_unused=skip)


def grid(path: Path, fps: float | None) -> Callable[[bool], Decoder]:
    protocol = ClipProtocol(8, 8, fps, (48, 64), 48, (0.5,) * 3, (0.5,) * 3)
    return lambda skip: GridFrames(path, protocol, skip_unused=skip)


def assert_same(make: Callable[[bool], Decoder]) -> tuple[Decoder, Decoder]:
    """(every frame decoded, skipping) after checking they yield the same arrays and the same meta."""
    full, skipping = make(False), make(True)
    expected, got = list(full), list(skipping)
    assert len(got) == len(expected) > 0
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert np.array_equal(a, b), f"frame {i} differs"
    assert skipping.meta == full.meta
    return full, skipping


def b_frames(path: Path) -> bool:
    """Whether some packet is presented before one decoded earlier (what makes non-reference frames)."""
    with av.open(str(path)) as container:
        pts = [p.pts for p in container.demux(container.streams.video[0]) if p.size]
    return any(b < a for a, b in zip(pts, pts[1:], strict=False))


def x264(path: Path, count: int = 120, **kwargs) -> Path:
    if not encoder_available("libx264"):
        pytest.skip("this FFmpeg build has no libx264 encoder")
    return write_video(path, panning_frames(count), kwargs.pop("fps", 30.0), "libx264", **kwargs)


@pytest.mark.parametrize("threads", [1, 4])  # 4: frame threads, each packet's skip_frame copied when submitted
@pytest.mark.parametrize("snippet_frames", [16, 5])
def test_x264_with_b_frames_skips_and_yields_the_same(tmp_path: Path, threads: int, snippet_frames: int) -> None:
    path = x264(tmp_path / "pan.mp4")  # our write_video's x264 makes B-frames by default
    assert b_frames(path)
    full, skipping = assert_same(snippets(path, snippet_frames, threads))
    assert full.decoded == full.meta.frames == 120
    assert skipping.decoded < full.decoded  # frames were skipped, and no pick missed (that would decode all again)


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_mpeg4_with_b_frames(tmp_path: Path, suffix: str) -> None:
    path = write_video(tmp_path / f"pan{suffix}", panning_frames(96), 25.0, "mpeg4", options={"bf": "2"})
    assert b_frames(path)
    full, skipping = assert_same(snippets(path, 16))
    assert skipping.decoded < full.decoded == 96


def test_variable_frame_rate(tmp_path: Path) -> None:
    times = [0.04 * i for i in range(40)] + [1.6 + 0.1 * i for i in range(40)] + [5.6 + 0.02 * i for i in range(40)]
    path = x264(tmp_path / "vfr.mkv", times=times, fps=50.0)  # the encoder keeps times at 1 / fps: 0.02 s
    for snippet_frames in (16, 3):
        full, skipping = assert_same(snippets(path, snippet_frames))
        assert skipping.decoded < full.decoded


def test_rotated(tmp_path: Path) -> None:
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write rotation metadata")
    full, skipping = assert_same(snippets(x264(tmp_path / "phone.mp4", rotation=90), 16))
    assert skipping.meta.rotation == 90 and skipping.decoded < full.decoded


@pytest.mark.parametrize("count", [5, 1])
def test_shorter_than_one_snippet(tmp_path: Path, count: int) -> None:
    full, _ = assert_same(snippets(x264(tmp_path / "short.mp4", count), 16))
    assert full.meta.snippets == 1


@pytest.mark.parametrize("fps", [12.0, 25.0])
def test_clip_grid_below_the_video_rate(tmp_path: Path, fps: float) -> None:
    full, skipping = assert_same(grid(x264(tmp_path / "pan.mp4"), fps))
    assert skipping.decoded < full.decoded and full.meta.fps == fps


def test_clip_grid_at_the_video_rate_decodes_every_frame(tmp_path: Path) -> None:
    full, skipping = assert_same(grid(x264(tmp_path / "pan.mp4"), None))
    assert skipping.decoded == full.decoded  # every frame is a pick: nothing to skip, no plan


def test_a_plan_the_decoder_contradicts_decodes_the_rest_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan missing the second half of the video: the frames decoded first are checked, the picks of the last
    one agreeing are held back, and the rest comes from a decode of every frame, as if nothing was planned."""
    path = x264(tmp_path / "pan.mp4")
    timeline = video._timeline

    def half(*args: object) -> object:
        pts, durations, time_base = timeline(*args)
        return pts[: len(pts) // 2], durations[: len(pts) // 2], time_base

    monkeypatch.setattr(video, "_timeline", half)
    full, skipping = assert_same(snippets(path, 4))
    assert skipping.decoded > full.decoded  # the first pass, then all of it


def test_a_truncated_file_yields_the_same_or_fails_the_same(tmp_path: Path) -> None:
    data = x264(tmp_path / "pan.mkv").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    outcomes = []
    for skip in (False, True):
        try:
            outcomes.append([frame.tobytes() for frame in SnippetDecoder(cut, 4, whole, 0, skip_unused=skip)])
        except VisionZooError as err:
            outcomes.append(str(err))
    assert outcomes[0] == outcomes[1]


def test_timestamps_that_jump_are_refused_with_bounded_work(tmp_path: Path) -> None:
    times = [0.04 * i for i in range(30)] + [1e6 + 0.04 * i for i in range(30)]
    path = x264(tmp_path / "jump.mkv", 60, times=times, fps=25.0)
    with pytest.raises(VisionZooError, match=r"jump\.mkv: its timestamps jump to 1e\+06 s after 30 decoded frames"):
        list(SnippetDecoder(path, 16, whole, 0))
