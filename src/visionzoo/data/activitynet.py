"""ActivityNet-1.3 snippet features in the BSN/BMN layout: reading, validation, writing, a parsed-once cache.

A data directory holds `video_info_new.csv` (video, subset, ...), `anet_anno_action.json` (durations, frame
counts, segments in seconds) and `csv_mean_100/<video>.csv` (header f0..f{D-1}, then T rows). The reference
reads one CSV with pandas on every item; here all CSVs of a split are parsed once into a memory-mapped float32
array under the cache folder, keyed by a fingerprint of the sources, so later epochs and runs never parse text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field, StringConstraints
from torch.utils.data import Dataset

from visionzoo.data.cache import cache_dir
from visionzoo.data.sampling import SampleKey, sample_rng
from visionzoo.errors import VisionZooError
from visionzoo.files import (
    Schema,
    atomic_write,
    exclusive_lock,
    read_json,
    read_text,
    require_regular_file,
    write_csv,
    write_json,
)

VIDEO_INFO = "video_info_new.csv"
VIDEO_ANNO = "anet_anno_action.json"
FEATURE_DIR = "csv_mean_100"
SUBSETS = ("train", "validation", "all")
CACHE_VERSION = 1
INFO_COLUMNS = ("video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame")

# ------------------------------------------------------------------------------------------------- schemas
# The limits of every ActivityNet-style file: names and labels of a sane length, at most a million videos and a
# million entries per video (ActivityNet-1.3 has 19,994 videos; a proposals file keeps 100 per video).
MAX_NAME = 512
MAX_ITEMS = 1_000_000
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Segment = tuple[float, float]  # any floats: reversed or non-finite ones are counted and judged by the reader


class Annotation(Schema):
    segment: Segment
    label: Annotated[str, StringConstraints(max_length=MAX_NAME)] | None = None


class LabelledAnnotation(Annotation):
    label: Annotated[str, StringConstraints(max_length=MAX_NAME)]


class DatabaseEntry(Schema):
    """One video of an ActivityNet database JSON (`activity_net.v1-3.min.json`)."""

    subset: Annotated[str, StringConstraints(max_length=64)] | None = None
    duration: Seconds | None = None
    annotations: Annotated[list[Annotation], Field(max_length=MAX_ITEMS)]


class Database(Schema):
    """An ActivityNet database JSON: `version`, `taxonomy`, `database` (what eval-* take as ground truth)."""

    version: Any = None
    taxonomy: Any = None
    database: Annotated[dict[Name, DatabaseEntry], Field(max_length=MAX_ITEMS)]


class BsnEntry(Schema):
    """One video of BSN's anet_anno_action.json: durations, frame counts, segments in seconds."""

    duration_second: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    duration_frame: Annotated[int, Field(gt=0)]
    feature_frame: Annotated[int, Field(gt=0)]
    annotations: Annotated[list[LabelledAnnotation], Field(max_length=MAX_ITEMS)]


BsnAnnotations = Annotated[dict[Name, BsnEntry], Field(max_length=MAX_ITEMS)]


class InfoRow(Schema):
    """A row of video_info_new.csv as BSN writes it (video, subset, and what the extraction measured)."""

    video: Name
    subset: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class MeasuredRow(InfoRow):
    """A row of the video_info_new.csv that `visionzoo features` writes: what the extraction measured."""

    numFrame: Annotated[int, Field(gt=0)]  # noqa: N815 (BSN's column names)
    seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    fps: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    featureFrame: Annotated[int, Field(ge=0)]  # noqa: N815


def segment_faults(segments: np.ndarray) -> tuple[int, int]:
    """(reversed, non-finite) rows of a [k, >=2] array of (start, end[, score])."""
    finite = np.isfinite(segments).all(axis=1)
    return int((finite & (segments[:, 1] < segments[:, 0])).sum()), int((~finite).sum())


@dataclass
class VideoRecord:
    name: str
    subset: str
    duration_second: float
    duration_frame: int
    feature_second: float  # the span the features cover: feature_frame / duration_frame * duration_second
    segments: np.ndarray  # [K, 2] float64, (start, end) in seconds, in annotation order
    labels: list[str]
    snippet_frames: int = 16  # frames per feature snippet (features.json; ActivityNet's TSN features: 16)


def normalized_segments(video: VideoRecord) -> np.ndarray:
    """[K, 2] float32 fractions of feature_second, each bound clipped to [0, 1] on its own, as the reference does."""
    return np.clip(video.segments / video.feature_second, 0.0, 1.0).astype(np.float32).reshape(-1, 2)


# ----------------------------------------------------------------------------------------------- annotations


def _read_video_info(path: Path) -> list[tuple[str, str]]:
    """(video, subset) per row, in file order, with the header and every row checked."""
    from visionzoo.files import validate

    if not path.is_file():
        raise VisionZooError(f"{path}: missing video info CSV (columns {','.join(INFO_COLUMNS)})")
    reader = csv.reader(io.StringIO(read_text(path, "video info CSV"), newline=""))
    header = next(reader, None)
    if header is None or "video" not in header or "subset" not in header:
        raise VisionZooError(f"{path}: header must name the columns 'video' and 'subset', got {header}")
    rows, seen = [], set()
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise VisionZooError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        found = validate(
            InfoRow, {k: v.strip() for k, v in zip(header, row, strict=True)}, f"{path}: line {line}", "row"
        )
        if found.video in seen:
            raise VisionZooError(f"{path}: line {line} repeats video {found.video}")
        seen.add(found.video)
        rows.append((found.video, found.subset))
    if not rows:
        raise VisionZooError(f"{path}: no videos listed")
    return rows


def _video_record(path: Path, name: str, subset: str, entry: BsnEntry) -> VideoRecord:
    segments = np.asarray([a.segment for a in entry.annotations], dtype=np.float64).reshape(-1, 2)
    reversed_, infinite = segment_faults(segments)
    if reversed_ or infinite or (segments < 0).any():  # training targets: no toolkit behaviour to keep, refused
        k = int(
            np.flatnonzero(
                ~np.isfinite(segments).all(axis=1) | (segments[:, 1] < segments[:, 0]) | (segments < 0).any(axis=1)
            )[0]
        )
        raise VisionZooError(
            f"{path}: {name}.annotations[{k}].segment: must be [start, end] seconds, 0 <= start <= end, finite, "
            f"got {list(entry.annotations[k].segment)}"
        )
    feature_second = entry.feature_frame / entry.duration_frame * entry.duration_second  # "some frames not used"
    return VideoRecord(
        name=name,
        subset=subset,
        duration_second=entry.duration_second,
        duration_frame=entry.duration_frame,
        feature_second=feature_second,
        segments=segments,
        labels=[a.label for a in entry.annotations],
    )


def load_annotations(root: str | Path, video_info: str = VIDEO_INFO, video_anno: str = VIDEO_ANNO) -> list[VideoRecord]:
    """Every video of the info CSV, in its order, with its annotation; the JSON may hold extra videos."""
    root = Path(root)
    if not root.is_dir():
        raise VisionZooError(f"{root}: no such data directory (expected {video_info}, {video_anno}, features)")
    rows = _read_video_info(root / video_info)
    anno_path = root / video_anno
    database = read_json(anno_path, "annotation JSON", BsnAnnotations)
    missing = [name for name, _ in rows if name not in database]
    if missing:
        raise VisionZooError(
            f"{anno_path}: {len(missing)} of the {len(rows)} videos in {video_info} have no annotation entry "
            f"(first: {', '.join(missing[:5])})"
        )
    return [_video_record(anno_path, name, subset, database[name]) for name, subset in rows]


def select_subset(videos: list[VideoRecord], subset: str) -> list[VideoRecord]:
    """The reference keeps rows whose subset contains the request ('train' matches 'training'); 'all' keeps all."""
    if subset not in SUBSETS:
        raise VisionZooError(f"subset {subset!r}: expected one of {', '.join(SUBSETS)}")
    return list(videos) if subset == "all" else [v for v in videos if subset in v.subset]


# ------------------------------------------------------------------------------------------------- features


def read_feature_csv(path: Path, temporal_scale: int | None, feat_dim: int) -> np.ndarray:
    """One feature file as float32 [temporal_scale, feat_dim] (None: any number of rows, at least one), or a
    VisionZooError naming the file and the fault."""
    require_regular_file(path, "feature file")
    try:
        with open(path, "rb") as handle:
            header = handle.readline()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty body is reported below as 0 rows
                values = np.loadtxt(handle, delimiter=",", dtype=np.float32, ndmin=2)
    except OSError as err:
        raise VisionZooError(f"{path}: cannot read feature file ({err.strerror})") from None
    except ValueError as err:
        raise VisionZooError(f"{path}: malformed feature CSV ({str(err).split(';')[0]})") from None
    columns = header.count(b",") + 1 if header.strip() else 0
    if columns != feat_dim:
        raise VisionZooError(
            f"{path}: header has {columns} columns, expected feat_dim={feat_dim} (f0..f{feat_dim - 1})"
        )
    rows = values.shape[0] if values.size else 0
    if values.size and values.shape[1] != feat_dim:
        raise VisionZooError(f"{path}: data rows have {values.shape[1]} values, expected feat_dim={feat_dim}")
    if rows != temporal_scale and (temporal_scale is not None or rows == 0):
        expected = "at least one" if temporal_scale is None else f"temporal_scale={temporal_scale}"
        raise VisionZooError(f"{path}: {rows} data rows, expected {expected}")
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise VisionZooError(
            f"{path}: {int((~finite).sum())} non-finite values, first {values[row, col]} at data row {row + 1}, "
            f"column f{col}"
        )
    return values


def _parse_transposed(args: tuple[Path, int, int]) -> np.ndarray:
    return np.ascontiguousarray(read_feature_csv(*args).T)


def _parsed(paths: list[Path], temporal_scale: int, feat_dim: int, workers: int) -> Iterator[np.ndarray]:
    jobs = [(path, temporal_scale, feat_dim) for path in paths]
    if workers <= 1:
        yield from map(_parse_transposed, jobs)
        return
    # spawn, not fork: the parent may hold torch threads, and the children only need numpy
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_parse_transposed, jobs, chunksize=32)


def _fingerprint(feature_dir: Path, names: list[str], temporal_scale: int, feat_dim: int) -> str:
    """Hash of what the cache is built from; lists every missing feature file in one error."""
    if not feature_dir.is_dir():
        raise VisionZooError(f"{feature_dir}: no such feature directory (expected <video>.csv files)")
    entries, missing = [], []
    for name in names:
        try:
            stat = os.stat(feature_dir / f"{name}.csv")
        except FileNotFoundError:
            missing.append(f"{name}.csv")
            continue
        entries.append((name, stat.st_size, stat.st_mtime_ns))
    if missing:
        raise VisionZooError(
            f"{feature_dir}: {len(missing)} of {len(names)} feature files missing (first: {', '.join(missing[:5])})"
        )
    source = [CACHE_VERSION, str(feature_dir.resolve()), temporal_scale, feat_dim, entries]
    return hashlib.sha256(json.dumps(source).encode()).hexdigest()[:24]


def _cached_array(directory: Path, names: list[str], shape: tuple[int, int, int]) -> Path | None:
    """The cache file when its index says it is complete and it has the expected shape; else None."""
    index_path, array_path = directory / "index.json", directory / "features.npy"
    try:
        index = json.loads(index_path.read_text())
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if index.get("videos") != names or array.shape != shape or array.dtype != np.float32:
        return None
    return array_path


def build_feature_cache(
    feature_dir: str | Path, names: list[str], temporal_scale: int, feat_dim: int, workers: int = 1
) -> Path:
    """Path of a float32 .npy [len(names), feat_dim, temporal_scale] holding the parsed CSVs, built on first use.

    Stored under cache_dir("anet", fingerprint); the array is written to a temporary name and renamed, and the
    index that marks it complete is renamed in last, so an interrupted build is redone rather than trusted.
    `workers` > 1 parses in that many spawned processes: on 2 cores that was slower than serial
    (benchmarks/bench_anet_features.py), so serial is the default until measured on more cores.
    """
    feature_dir = Path(feature_dir)
    directory = cache_dir("anet", _fingerprint(feature_dir, names, temporal_scale, feat_dim))
    shape = (len(names), feat_dim, temporal_scale)
    if (found := _cached_array(directory, names, shape)) is not None:
        return found
    with exclusive_lock(directory / "build.lock"):
        if (found := _cached_array(directory, names, shape)) is not None:
            return found
        array_path = directory / "features.npy"

        def fill(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            paths = [feature_dir / f"{name}.csv" for name in names]
            for i, features in enumerate(_parsed(paths, temporal_scale, feat_dim, workers)):
                out[i] = features
            out.flush()
            del out

        atomic_write(array_path, fill)
        index = {"version": CACHE_VERSION, "feature_dir": str(feature_dir.resolve()), "videos": names}
        write_json(directory / "index.json", index)
    return array_path


@dataclass(frozen=True)
class FeatureAugment:
    """Training-time changes of an item, drawn from `sample_rng(seed, epoch, index)` (regularisation on small data).

    dropout: each feature value zeroed with this probability, the others scaled by 1 / (1 - p).
    jitter: the video is seen through a window of length z in [1/(1+j), 1+j] of its span (log-uniform) at a random
    offset, resampled to T rows by linear interpolation (zeros outside the span, as BSN's rescale), segments moved
    with it: a temporal crop or zoom-out with shift.
    """

    seed: int = 0
    dropout: float = 0.0
    jitter: float = 0.0

    def __call__(self, features: np.ndarray, segments: np.ndarray, epoch: int, index: int) -> tuple[np.ndarray, ...]:
        rng = sample_rng(self.seed, epoch, index)
        if self.jitter > 0:
            features, segments = self._window(features, segments, rng)
        if self.dropout > 0:
            keep = rng.random(features.shape) >= self.dropout
            features = np.where(keep, features / (1.0 - self.dropout), 0.0).astype(np.float32)
        return features, segments

    def _window(self, features: np.ndarray, segments: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        T = features.shape[1]
        length = float(np.exp(rng.uniform(-np.log1p(self.jitter), np.log1p(self.jitter))))
        start = rng.uniform(min(0.0, 1.0 - length), max(0.0, 1.0 - length))
        position = (start + (np.arange(T) + 0.5) / T * length) * T - 0.5  # in the original rows
        low = np.clip(np.floor(position), 0, T - 1).astype(np.int64)
        high = np.minimum(low + 1, T - 1)
        weight = np.clip(position - low, 0.0, 1.0)
        resampled = features[:, low] * (1 - weight) + features[:, high] * weight
        resampled[:, (position < -0.5) | (position > T - 0.5)] = 0.0
        moved = np.clip((segments - start) / length, 0.0, 1.0)
        return resampled.astype(np.float32), moved[moved[:, 1] > moved[:, 0]].astype(np.float32).reshape(-1, 2)


class ActivityNetFeatures(Dataset):
    """Items are (features float32 [feat_dim, T], segments float32 [K, 2] as fractions of feature_second, the
    video's record).

    The label maps (TEM scores, IoU map) are computed from the segments, batched, by the task. With `augment`
    (training only) items change with the epoch, drawn from (seed, epoch, index).
    """

    def __init__(
        self,
        root: str | Path,
        subset: str,
        temporal_scale: int = 100,
        feat_dim: int = 400,
        video_info: str = VIDEO_INFO,
        video_anno: str = VIDEO_ANNO,
        feature_dir: str = FEATURE_DIR,
        snippet_frames: int = 16,
        augment: FeatureAugment | None = None,
    ) -> None:
        root = Path(root)
        self.videos = select_subset(load_annotations(root, video_info, video_anno), subset)
        for video in self.videos:
            video.snippet_frames = snippet_frames
        self.augment = augment
        if not self.videos:
            raise VisionZooError(f"{root / video_info}: no videos in subset {subset!r}")
        self.temporal_scale, self.feat_dim = temporal_scale, feat_dim
        self.segments = [normalized_segments(video) for video in self.videos]
        names = [video.name for video in self.videos]
        self.cache_path = build_feature_cache(root / feature_dir, names, temporal_scale, feat_dim)
        self._features: np.ndarray | None = None

    @property
    def features(self) -> np.ndarray:
        """The memory-mapped [N, feat_dim, T] array, opened lazily so each loader worker maps it itself."""
        if self._features is None:
            self._features = np.load(self.cache_path, mmap_mode="r")
        return self._features

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_features": None}  # never pickle the mapping (spawned workers would copy it)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, VideoRecord]:
        index, epoch = key
        features, segments = np.array(self.features[index]), self.segments[index].copy()
        if self.augment is not None:
            features, segments = self.augment(features, segments, epoch, index)
        return torch.from_numpy(features), torch.from_numpy(segments), self.videos[index]


def pool_snippets(
    snippets: np.ndarray, temporal_scale: int, snippet_frames: int, duration_frame: int, duration_second: float
) -> np.ndarray:
    """[L, D] per-snippet features -> [temporal_scale, D] float64, as BSN/BMN's `poolData` made `csv_mean_100`.

    The reference (BSN `data/activitynet_feature_cuhk/data_process.py`) with its 16 frames and 400 columns as
    parameters: snippet i sits at its centre, (i + 0.5) * st seconds with st = snippet_frames / fps and
    fps = duration_frame / duration_second; the features cover L * snippet_frames frames. Anchor k spans
    [k/T, (k+1)/T] of that cover, clipped to the centres (1e-4 inside); its value is the mean of the linear
    interpolation at 3 evenly spaced points, zeros where the span misses the centres. One snippet is repeated.
    """
    snippets = np.asarray(snippets, dtype=np.float64)
    length = len(snippets)
    if length == 1:
        return np.repeat(snippets, temporal_scale, axis=0)
    corrected_second = float(length * snippet_frames) / duration_frame * duration_second
    st = snippet_frames / (float(duration_frame) / duration_second)
    first, last = st / 2, st / 2 + (length - 1) * st
    anchors = 1.0 / temporal_scale * np.arange(temporal_scale + 1)
    xmin = np.maximum(first + 0.0001, anchors[:-1] * corrected_second)
    xmax = np.minimum(last - 0.0001, anchors[1:] * corrected_second)
    points = xmin[:, None] + (xmax - xmin)[:, None] / 2 * np.arange(3)  # [T, 3] seconds
    position = np.clip((points - first) / st, 0, length - 1)  # fractional snippet index
    low = np.minimum(position.astype(np.int64), length - 2)
    weight = (position - low)[..., None]
    values = (1 - weight) * snippets[low] + weight * snippets[low + 1]  # [T, 3, D]
    pooled = values.mean(axis=1)
    pooled[(xmax < first) | (xmin > last)] = 0.0
    return pooled


@cache
def _integer_table() -> np.ndarray:
    """[2000, 4] ASCII of 0..999 then -0..-999, left-aligned, zero-padded (the padding is overwritten)."""
    rows = [(("-" if negative else "") + str(n)).ljust(4, "\0").encode() for negative in (0, 1) for n in range(1000)]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(2000, 4)


def format_csv_rows(values: np.ndarray) -> bytes:
    """[R, C] values as CSV text with 3 decimals, vectorised (Python's per-value formatting is several times slower).

    Each value is scattered byte by byte to its offset in the output: sign and integer digits, '.', three
    decimals, then ',' or a newline.
    """
    values = np.clip(np.asarray(values, dtype=np.float64), -999.999, 999.999)
    scaled = np.rint(np.abs(values) * 1000).astype(np.int64).ravel()
    integer, fraction = np.divmod(scaled, 1000)
    negative = (values.ravel() < 0) & (scaled > 0)
    width = 1 + (integer >= 10) + (integer >= 100) + negative  # characters before the decimal point
    starts = np.cumsum(width + 5) - (width + 5)
    out = np.empty(int(starts[-1] + width[-1] + 5), dtype=np.uint8)
    table = _integer_table()[integer + 1000 * negative]
    for j in range(4):  # bytes past `width` land inside this value's own span and are overwritten below
        out[starts + j] = table[:, j]
    point = starts + width
    out[point] = ord(".")
    out[point + 1] = fraction // 100 + ord("0")
    out[point + 2] = fraction // 10 % 10 + ord("0")
    out[point + 3] = fraction % 10 + ord("0")
    separator = np.full(scaled.size, ord(","), dtype=np.uint8)
    separator[values.shape[1] - 1 :: values.shape[1]] = ord("\n")
    out[point + 4] = separator
    return out.tobytes()


def format_feature_csv(values: np.ndarray) -> str:
    """A feature CSV of any values: header f0..f{D-1}, then one row per time step, 6 significant digits (the
    3-decimal `format_csv_rows` clips at 1000, too narrow for an arbitrary backbone's features)."""
    buffer = io.StringIO()
    header = ",".join(f"f{i}" for i in range(values.shape[1]))
    np.savetxt(buffer, np.asarray(values, dtype=np.float64), fmt="%.6g", delimiter=",", header=header, comments="")
    return buffer.getvalue()


def write_video_info(path: Path, rows: list[list[object]]) -> None:
    """video_info_new.csv: one row per video in the columns (video, numFrame, seconds, fps, rfps, subset,
    featureFrame) that BSN/BMN's loaders read."""
    write_csv(path, INFO_COLUMNS, rows)


def segment_array(annotations: list[Annotation]) -> np.ndarray:
    """[k, 2] float64 seconds of a video's annotations, in file order."""
    return np.asarray([a.segment for a in annotations], dtype=np.float64).reshape(-1, 2)
