"""Video decoding for snippet features (PyAV) and BSN's rescale of the snippets to T rows."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_ACTIVITYNET
from numerics import assert_close
from PIL import Image
from video_files import frame_index, index_frame, indexed_video, zero_frame_video

from visionzoo.data.activitynet import pool_snippets
from visionzoo.data.transforms import EvalTransform, input_geometry
from visionzoo.errors import VisionZooError

av = pytest.importorskip("av")
scipy_interpolate = pytest.importorskip("scipy.interpolate")

from visionzoo.data.video import SnippetDecoder, encoder_available, thumbnails, write_video  # noqa: E402


def whole(width: int, height: int) -> tuple[int, int, int, int]:
    return width, height, 0, 0


def decode(path: Path, snippet_frames: int) -> tuple[list[int], SnippetDecoder]:
    decoder = SnippetDecoder(path, snippet_frames, whole, 0)
    return [frame_index(frame) for frame in decoder], decoder


# --------------------------------------------------------------------------------------------- the rescale


def reference_pool_data(data, videoAnno, num_prop=100, num_bin=1, num_sample_bin=3, pool_type="mean", snippet=16):  # noqa: N803
    """BSN `data/activitynet_feature_cuhk/data_process.py` poolData, transcribed line by line; its hard-coded
    16 frames and 400 columns are `snippet` and `data.shape[1]` here."""
    feature_frame = len(data) * snippet
    video_frame = videoAnno["duration_frame"]
    video_second = videoAnno["duration_second"]
    corrected_second = float(feature_frame) / video_frame * video_second
    fps = float(video_frame) / video_second
    st = snippet / fps

    if len(data) == 1:
        video_feature = np.stack([data] * num_prop)
        video_feature = np.reshape(video_feature, [num_prop, data.shape[1]])
        return video_feature

    x = [st / 2 + ii * st for ii in range(len(data))]
    f = scipy_interpolate.interp1d(x, data, axis=0)

    video_feature = []
    zero_sample = np.zeros(num_bin * data.shape[1])
    tmp_anchor_xmin = [1.0 / num_prop * i for i in range(num_prop)]
    tmp_anchor_xmax = [1.0 / num_prop * i for i in range(1, num_prop + 1)]

    num_sample = num_bin * num_sample_bin
    for idx in range(num_prop):
        xmin = max(x[0] + 0.0001, tmp_anchor_xmin[idx] * corrected_second)
        xmax = min(x[-1] - 0.0001, tmp_anchor_xmax[idx] * corrected_second)
        if xmax < x[0]:
            video_feature.append(zero_sample)
            continue
        if xmin > x[-1]:
            video_feature.append(zero_sample)
            continue

        plen = (xmax - xmin) / (num_sample - 1)
        x_new = [xmin + plen * ii for ii in range(num_sample)]
        y_new = f(x_new)
        y_new_pool = []
        for _b in range(num_bin):
            if pool_type == "mean":
                tmp_y_new = np.mean(y_new, axis=0)
            elif pool_type == "max":
                tmp_y_new = np.max(y_new, axis=0)
            y_new_pool.append(tmp_y_new)
        y_new_pool = np.stack(y_new_pool)
        y_new_pool = np.reshape(y_new_pool, [-1])
        video_feature.append(y_new_pool)
    video_feature = np.stack(video_feature)
    return video_feature


def rescale_cases(rng: np.random.Generator) -> list[tuple[int, int, int, float, int]]:
    """(snippets L, snippet frames, duration_frame, duration_second, T): 1 and 2 snippets, random ones, frame
    counts a few frames either side of L * s (the real features cover up to a snippet more or less)."""
    cases = []
    for length in [1, 2, 1, 2, *rng.integers(3, 400, 16).tolist()]:
        snippet = int(rng.choice([16, 8, 5]))
        frames = max(1, length * snippet + int(rng.integers(-snippet, snippet + 1)))
        fps = float(rng.choice([24.0, 25.0, 29.97, 30.0]))
        cases.append((length, snippet, frames, round(frames / fps, 2), int(rng.choice([100, 32, 7]))))
    return cases


@pytest.mark.numerics
def test_rescale_equals_the_reference_pooldata() -> None:
    rng = np.random.default_rng(0)
    for length, snippet, frames, seconds, T in rescale_cases(rng):
        data = rng.normal(size=(length, int(rng.integers(1, 64))))
        ours = pool_snippets(data, T, snippet, frames, seconds)
        expected = reference_pool_data(data, {"duration_frame": frames, "duration_second": seconds}, T, snippet=snippet)
        assert ours.shape == expected.shape == (T, data.shape[1])
        np.testing.assert_array_equal(ours == 0, expected == 0)  # the same anchors outside the span are zeros
        assert_close(ours, expected, 1e-12, what=f"L={length} s={snippet} frames={frames} T={T}")
        if length == 1:
            np.testing.assert_array_equal(ours, np.repeat(data, T, axis=0))


@pytest.mark.numerics
@pytest.mark.skipif(not (SHARED_ACTIVITYNET / "anet_anno_action.json").is_file(), reason="ActivityNet files absent")
def test_rescale_equals_the_reference_on_real_video_lengths() -> None:
    """The real videos' frame counts, durations and snippet counts (feature_frame / 16), random 400-d features."""
    database = json.loads((SHARED_ACTIVITYNET / "anet_anno_action.json").read_text())
    rng = np.random.default_rng(1)
    names = sorted(database)
    for name in rng.choice(names, 40, replace=False):
        entry = database[name]
        data = rng.random((entry["feature_frame"] // 16, 400))
        ours = pool_snippets(data, 100, 16, entry["duration_frame"], entry["duration_second"])
        assert_close(ours, reference_pool_data(data, entry), 1e-12, what=name)


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".avi"])
def test_snippet_centre_frames_in_every_container(tmp_path: Path, suffix: str) -> None:
    from video_files import CODECS

    if not encoder_available(CODECS[suffix]):
        pytest.skip(f"this FFmpeg build has no {CODECS[suffix]} encoder")
    path = indexed_video(tmp_path / f"clip{suffix}", frames=70, fps=25.0)
    found, decoder = decode(path, snippet_frames=16)
    assert found == [8, 24, 40, 56]  # 70 // 16 = 4 snippets, each its centre frame i*16 + 8
    meta = decoder.meta
    assert (meta.frames, meta.fps, meta.seconds, meta.snippets) == (70, 25.0, 2.8, 4)
    assert (meta.width, meta.height, meta.rotation) == (64, 48, 0)


def test_short_videos_get_one_snippet(tmp_path: Path) -> None:
    found, decoder = decode(indexed_video(tmp_path / "short.mp4", frames=5), snippet_frames=16)
    assert found == [4] and decoder.meta.snippets == 1 and decoder.meta.frames == 5  # the last frame is on screen
    found, _ = decode(indexed_video(tmp_path / "one.mp4", frames=1), snippet_frames=3)
    assert found == [0]


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write rotation metadata")
    frames = []
    for i in range(8):
        frame = index_frame(i)
        frame[:8, :8] = 255  # a white corner, top left as recorded
        frames.append(frame)
    path = write_video(tmp_path / "phone.mp4", frames, 25.0, "libx264", rotation=90)
    decoder = SnippetDecoder(path, 4, whole, 0)
    first = next(iter(decoder))
    assert first.shape == (64, 48, 3)  # displayed portrait
    bright = np.argwhere(first.min(axis=2) > 200)
    # a quarter turn counter-clockwise moves the top-left corner to the bottom left
    assert bright[:, 0].min() >= 48 and bright[:, 1].max() < 16
    list(decoder)
    assert (decoder.meta.width, decoder.meta.height, decoder.meta.rotation) == (48, 64, 90)


def test_variable_frame_rate_is_read_by_timestamps(tmp_path: Path) -> None:
    """Ten frames 0.1 s apart, then ten 0.2 s apart: grid frame g is the frame on screen at (g + 0.5) / fps."""
    times = [0.1 * i for i in range(10)] + [1.0 + 0.2 * i for i in range(10)]
    path = indexed_video(tmp_path / "vfr.mp4", frames=20, fps=10.0, times=times)
    found, decoder = decode(path, snippet_frames=1)
    fps = decoder.meta.fps
    assert fps == pytest.approx(20 / 2.7, rel=0.01)  # FFmpeg's average rate: frames over the timestamp span
    on_screen = [max(i for i, t in enumerate(times) if t <= (g + 0.5) / fps + 1e-9) for g in range(len(found))]
    assert found == on_screen
    assert decoder.meta.frames == len(found) == round(decoder.meta.seconds * fps)


def test_frames_are_prepared_as_evaluation_prepares_images(tmp_path: Path) -> None:
    """FFmpeg's resize + crop of a frame gives what the eval transform gives the same picture (the card's geometry)."""
    ramp = np.zeros((72, 96, 3), np.uint8)
    ramp[..., 0] = np.linspace(0, 255, 96)[None, :]
    ramp[..., 1] = np.linspace(0, 255, 72)[:, None]
    path = write_video(tmp_path / "ramp.mkv", [ramp] * 4, 25.0, "libx264")
    prep = {"resize": "eval_crop", "img_size": 56, "crop_pct": 0.875, "interpolation": "bilinear"}
    decoder = SnippetDecoder(path, 2, lambda w, h: input_geometry(prep, w, h), 56, "bilinear")
    frame = next(iter(decoder)).astype(np.float64)
    full = next(iter(SnippetDecoder(path, 2, whole, 0)))  # the decoded picture, unscaled
    expected = EvalTransform(56, 0.875, "bilinear")(Image.fromarray(full)).numpy().transpose(1, 2, 0)
    assert frame.shape == (56, 56, 3)
    assert np.abs(frame - expected)[..., :2].mean() < 2.0  # a crop one pixel off moves a ramp by ~3 levels


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("hello, not a video\n"), "not a video FFmpeg can read"),
        (lambda p: p.write_bytes(b""), "not a video FFmpeg can read"),
        (zero_frame_video, "no video frames (a zero-length video)"),
    ],
)
def test_unreadable_videos_are_named(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / ("clip.avi" if make is zero_frame_video else "clip.mp4")
    make(path)
    with pytest.raises(VisionZooError, match=re.escape(message)) as caught:
        list(SnippetDecoder(path, 16, whole, 0))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_corrupt_video_is_named(tmp_path: Path) -> None:
    data = bytearray(indexed_video(tmp_path / "good.mp4", frames=40).read_bytes())
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
    with pytest.raises(VisionZooError, match=r"cut\.mp4: not a video FFmpeg can read"):
        list(SnippetDecoder(tmp_path / "cut.mp4", 16, whole, 0))


def test_without_pyav_one_line_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = indexed_video(tmp_path / "clip.mp4", frames=4)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VisionZooError, match=r"PyAV is not installed.*pip install 'visionzoo\[video\]'"):
        list(SnippetDecoder(path, 16, whole, 0))


def test_thumbnails_at_the_asked_times(tmp_path: Path) -> None:
    path = indexed_video(tmp_path / "clip.mp4", frames=50, fps=10.0)
    images = thumbnails(path, [0.0, 2.0, 4.5], height=24)
    assert [image.shape for image in images] == [(24, 32, 3)] * 3
    assert [frame_index(image) for image in images] == [0, 20, 45]
