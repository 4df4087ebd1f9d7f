"""Long videos in the THUMOS14 way: snippet features of any length, per-class annotation files, sliding windows.

A data directory holds
- `video_info_new.csv` (video, numFrame, seconds, fps, rfps, subset, featureFrame; `video`, `seconds`, `fps`
  and `subset` are read): each video's duration, frame rate and subset;
- `features.json` (the feature extractor's description, format visionzoo-features-v1): its `snippet_frames`
  is the snippet stride s, unless the recipe's `snippet_frames` is set;
- `snippets/<video>.npy` float32 [L, D] (or `<video>.csv`, header f0..f{D-1}, L rows): row i covers frames
  [i s, (i + 1) s) at the video's own fps, so snippet boundary k sits at k s / fps seconds;
- annotations: a folder of THUMOS14 per-class files (`<Class>_val.txt`, `<Class>_test.txt`, lines `video start
  end` in seconds; `Ambiguous_*` is skipped, as the Python toolboxes do) or an ActivityNet-style database JSON.

Every feature file is checked once (shape, finite values) and CSVs are converted to .npy, in a cache keyed by
a fingerprint of the sources; windows are then read from memory-mapped arrays.

Windows follow OpenTAD's `SlidingWindowDataset`: T snippets every T (1 - overlap), the last one aligned to the
video's end (a video shorter than T is one zero-padded window); a ground-truth instance belongs to a window
when more than `ioa` of it lies inside (its completeness, `compute_gt_completeness`), clipped to the window;
training drops windows without instances.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from visionzoo.data.activitynet import InfoRow, Name, read_feature_csv
from visionzoo.data.cache import cache_dir
from visionzoo.data.feature_folder import FEATURES_JSON, read_feature_description
from visionzoo.data.sampling import SampleKey
from visionzoo.errors import VisionZooError
from visionzoo.files import Schema, read_text, validate, write_npy, write_text

CLASS_FILE_SUFFIXES = {"validation": "_val.txt", "test": "_test.txt"}
AMBIGUOUS = "Ambiguous"
CACHE_VERSION = 1

Annotations = dict[str, tuple[np.ndarray, list[str]]]  # video -> ([K, 2] seconds, labels)


# ----------------------------------------------------------------------------------------------- annotations


def _class_files(folder: Path, subset: str | None) -> list[tuple[Path, str]]:
    """(file, class) of the per-class files of `subset` (None: both), sorted by file name."""
    if subset is not None and subset not in CLASS_FILE_SUFFIXES:
        raise VisionZooError(f"--subset {subset}: THUMOS14 class files exist for {', '.join(CLASS_FILE_SUFFIXES)}")
    suffixes = [CLASS_FILE_SUFFIXES[subset]] if subset is not None else list(CLASS_FILE_SUFFIXES.values())
    found = []
    for path in sorted(folder.glob("*.txt")):
        suffix = next((s for s in suffixes if path.name.endswith(s)), None)
        if suffix is not None and path.name[: -len(suffix)] != AMBIGUOUS:
            found.append((path, path.name[: -len(suffix)]))
    if not found:
        wanted = " or ".join(f"<Class>{s}" for s in suffixes)
        raise VisionZooError(
            f"{folder}: no THUMOS14 class files ({wanted}), nor video_info_new.csv + anet_anno_action.json"
        )
    return found


class ClassFileLine(Schema):
    """A line of a THUMOS14 per-class file: `video start end` (seconds)."""

    video: Name
    start: Annotated[float, Field(allow_inf_nan=False)]
    end: Annotated[float, Field(allow_inf_nan=False)]

    @model_validator(mode="after")
    def _ordered(self) -> ClassFileLine:
        if self.end < self.start:
            raise ValueError(f"ends at {self.end:g} before it starts at {self.start:g}")
        return self


class ThumosInfoRow(InfoRow):
    """A row of a THUMOS14 feature folder's video_info CSV."""

    seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    fps: Annotated[float, Field(gt=0, allow_inf_nan=False)]


def load_class_files(folder: str | Path, subset: str | None = None) -> Annotations:
    """Instances per video (sorted by name) from THUMOS14 per-class files: classes in file-name order."""
    rows: dict[str, list[tuple[float, float, str]]] = {}
    for path, label in _class_files(Path(folder), subset):
        for line_number, line in enumerate(read_text(path, "class file").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise VisionZooError(f"{path}: line {line_number}: {len(fields)} fields, expected 'video start end'")
            found = validate(ClassFileLine, dict(zip(("video", "start", "end"), fields, strict=True)),
                             f"{path}: line {line_number}", "line")  # fmt: skip
            rows.setdefault(found.video, []).append((found.start, found.end, label))
    return {
        name: (np.array([r[:2] for r in rows[name]], dtype=np.float64), [r[2] for r in rows[name]])
        for name in sorted(rows)
    }


def _load_database(path: Path) -> Annotations:
    """Instances per video of a database JSON: {"database": {video: {"annotations": [...]}}} or the bare mapping."""
    from visionzoo.data.activitynet import Database, segment_array
    from visionzoo.files import read_json, validate

    data = read_json(path, "annotation JSON")
    bare = isinstance(data, dict) and "database" not in data
    database = validate(Database, {"database": data} if bare else data, str(path), "annotation JSON").database
    found = {}
    for name, entry in database.items():
        if any(item.label is None for item in entry.annotations):
            raise VisionZooError(f"{path}: database.{name}.annotations: each needs a 'label'")
        kept = [item for item in entry.annotations if item.label != AMBIGUOUS]
        found[name] = (segment_array(kept), [item.label for item in kept])
    return found


def load_annotation_source(path: Path) -> Annotations:
    """A folder of per-class files (both subsets) or a database JSON."""
    if path.is_dir():
        return load_class_files(path)
    if not path.is_file():
        raise VisionZooError(f"{path}: no annotation folder (<Class>_val.txt, <Class>_test.txt) or JSON")
    return _load_database(path)


# ------------------------------------------------------------------------------------------------- videos


@dataclass
class LongVideo:
    """One video: where its features are, their snippet grid, and its instances in seconds."""

    name: str
    subset: str
    duration_second: float
    fps: float
    snippet_frames: int
    snippets: int  # L, rows of the feature file
    features: Path  # a float .npy [L, D] (CSV sources are converted)
    segments: np.ndarray  # [K, 2] seconds
    labels: list[str]

    @property
    def snippet_second(self) -> float:
        return self.snippet_frames / self.fps


def read_video_info(path: Path) -> list[tuple[str, str, float, float]]:
    """(video, subset, seconds, fps) per row of the info CSV, each checked."""
    if not path.is_file():
        raise VisionZooError(f"{path}: missing video info CSV (columns video, seconds, fps, subset)")
    reader = csv.DictReader(io.StringIO(read_text(path, "video info CSV"), newline=""))
    missing = {"video", "seconds", "fps", "subset"} - set(reader.fieldnames or [])
    if missing:
        raise VisionZooError(f"{path}: header lacks the column(s) {', '.join(sorted(missing))}")
    rows = []
    for line, row in enumerate(reader, start=2):
        found = validate(ThumosInfoRow, row, f"{path}: line {line}", "row")
        rows.append((found.video, found.subset, found.seconds, found.fps))
    return rows


def snippet_frames_of(root: Path, given: int, feat_dim: int) -> int:
    """The snippet stride in frames: `given` when set, else `snippet_frames` of features.json (checked)."""
    path = root / FEATURES_JSON
    if not path.is_file():
        if given > 0:
            return given
        raise VisionZooError(f"{path}: missing; give the snippet stride in frames with --snippet-frames")
    info = read_feature_description(path)
    if info.get("feat_dim") not in (None, feat_dim):
        raise VisionZooError(f"{path}: features of {info['feat_dim']} dimensions, but --feat-dim is {feat_dim}")
    frames = given or info.get("snippet_frames")
    if not isinstance(frames, int) or frames < 1:
        raise VisionZooError(f"{path}: 'snippet_frames' must be a positive integer, got {frames!r}")
    return frames


def _feature_sources(feature_dir: Path, names: list[str]) -> list[Path]:
    if not feature_dir.is_dir():
        raise VisionZooError(f"{feature_dir}: no such feature directory (expected <video>.npy or <video>.csv)")
    sources, missing = [], []
    for name in names:
        found = [feature_dir / f"{name}{ext}" for ext in (".npy", ".csv") if (feature_dir / f"{name}{ext}").is_file()]
        sources += found[:1]
        if not found:
            missing.append(name)
    if missing:
        raise VisionZooError(
            f"{feature_dir}: {len(missing)} of {len(names)} videos have no .npy or .csv features "
            f"(first: {', '.join(missing[:5])})"
        )
    return sources


def _checked_array(path: Path, feat_dim: int) -> np.ndarray:
    """The features of one file as float32 [L, D], with every fault named."""
    if path.suffix == ".csv":
        return read_feature_csv(path, None, feat_dim)
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise VisionZooError(f"{path}: not a readable .npy array ({err})") from None
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != feat_dim:
        raise VisionZooError(f"{path}: shape {list(values.shape)}, expected [snippets >= 1, feat_dim={feat_dim}]")
    if not np.issubdtype(values.dtype, np.floating):
        raise VisionZooError(f"{path}: dtype {values.dtype}, expected float32")
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise VisionZooError(f"{path}: {int((~finite).sum())} non-finite values, first at row {row}, column {col}")
    return values


def prepare_features(feature_dir: Path, names: list[str], feat_dim: int) -> list[tuple[Path, int]]:
    """(.npy path, snippets) per video, each file checked once: the check (and CSV conversion) is cached under
    a fingerprint of the sources, so later runs only map the arrays."""
    sources = _feature_sources(feature_dir, names)
    stats = [(path.name, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in sources]
    key = json.dumps([CACHE_VERSION, str(feature_dir.resolve()), feat_dim, stats])
    directory = cache_dir("snippets", hashlib.sha256(key.encode()).hexdigest()[:24])
    index_path = directory / "index.json"
    if index_path.is_file():
        return [(Path(path), length) for path, length in json.loads(index_path.read_text())]
    prepared = []
    for path in sources:
        values = _checked_array(path, feat_dim)
        if path.suffix == ".csv":
            target = directory / f"{path.stem}.npy"
            write_npy(target, values)
            path = target
        prepared.append((str(path), int(values.shape[0])))
    write_text(index_path, json.dumps(prepared))  # written last: an interrupted check is redone, never trusted
    return [(Path(path), length) for path, length in prepared]


def load_long_videos(
    root: str | Path,
    subset: str,
    feat_dim: int,
    video_info: str = "video_info_new.csv",
    video_anno: str = "annotations",
    feature_dir: str = "snippets",
    snippet_frames: int = 0,
) -> list[LongVideo]:
    """The videos of `subset` (the info CSV's subset column; 'all': every row), in the CSV's order."""
    root = Path(root)
    if not root.is_dir():
        raise VisionZooError(f"{root}: no such data directory (expected {video_info}, {video_anno}, {feature_dir}/)")
    rows = read_video_info(root / video_info)
    chosen = [row for row in rows if subset in ("all", row[1])]
    if not chosen:
        subsets = ", ".join(sorted({row[1] for row in rows}))
        raise VisionZooError(f"{root / video_info}: no video of subset {subset!r} (it has: {subsets})")
    frames = snippet_frames_of(root, snippet_frames, feat_dim)
    annotations = load_annotation_source(root / video_anno)
    features = prepare_features(root / feature_dir, [row[0] for row in chosen], feat_dim)
    empty = (np.zeros((0, 2)), [])
    return [
        LongVideo(name, sub, seconds, fps, frames, length, path, *annotations.get(name, empty))
        for (name, sub, seconds, fps), (path, length) in zip(chosen, features, strict=True)
    ]


# ------------------------------------------------------------------------------------------------ windows


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """First snippets of the windows over `length` snippets: every `stride`, the last aligned to the end."""
    starts = list(range(0, max(length - size, 0) + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def window_stride(size: int, overlap: float) -> int:
    if not 0.0 <= overlap < 1.0:
        raise VisionZooError(f"window overlap {overlap}: expected 0 <= overlap < 1")
    return max(1, int(size * (1.0 - overlap)))


def window_instances(video: LongVideo, start: int, size: int, ioa: float) -> np.ndarray:
    """[K, 2] float32 fractions of the window of the instances more than `ioa` inside it, clipped to it."""
    bounds = video.segments / video.snippet_second  # snippet units
    inside = np.minimum(bounds[:, 1], start + size) - np.maximum(bounds[:, 0], start)
    completeness = inside / np.maximum(bounds[:, 1] - bounds[:, 0], 1e-6)
    kept = bounds[completeness > ioa].clip(start, start + size)
    return ((kept - start) / size).astype(np.float32).reshape(-1, 2)


@dataclass
class WindowRecord:
    """What evaluation needs of one window: its video and where the window lies in it."""

    video: LongVideo
    start: int  # first snippet
    size: int  # T

    @property
    def offset_second(self) -> float:
        return self.start * self.video.snippet_second

    @property
    def span_second(self) -> float:
        return self.size * self.video.snippet_second


class _MappedFeatures:
    """Memory-mapped feature files, opened lazily in each loader worker (never pickled)."""

    def __init__(self) -> None:
        self._open: dict[Path, np.ndarray] = {}

    def __getstate__(self) -> dict[str, object]:
        return {"_open": {}}

    def rows(self, path: Path, begin: int, end: int) -> np.ndarray:
        if path not in self._open:
            self._open[path] = np.load(path, mmap_mode="r")
        return np.array(self._open[path][begin:end], dtype=np.float32)  # a copy: torch wants writable memory


class SnippetWindows(Dataset):
    """Items are (features float32 [D, T], zero-padded past the video's end; instances float32 [K, 2] as
    fractions of the window; the WindowRecord)."""

    def __init__(
        self, videos: list[LongVideo], size: int, overlap: float, ioa: float, drop_empty: bool, feat_dim: int
    ) -> None:
        stride = window_stride(size, overlap)
        self.size, self.feat_dim, self.features = size, feat_dim, _MappedFeatures()
        self.windows: list[tuple[WindowRecord, np.ndarray]] = []
        for video in videos:
            for start in window_starts(video.snippets, size, stride):
                instances = window_instances(video, start, size, ioa)
                if len(instances) or not drop_empty:
                    self.windows.append((WindowRecord(video, start, size), instances))
        if not self.windows:
            raise VisionZooError(f"no window of {size} snippets holds an instance (ioa > {ioa}): nothing to train on")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor, WindowRecord]:
        index, _epoch = key  # deterministic items
        record, instances = self.windows[index]
        rows = self.features.rows(record.video.features, record.start, record.start + self.size)
        features = np.zeros((self.size, self.feat_dim), dtype=np.float32)
        features[: len(rows)] = rows
        return torch.from_numpy(features.T.copy()), torch.from_numpy(instances), record


class WholeVideos(Dataset):
    """Items are (a video's features float32 [D, T]: its L snippets average-pooled to T bins, the LongVideo),
    for video-level classification."""

    def __init__(self, videos: list[LongVideo], size: int) -> None:
        self.videos, self.size, self.features = videos, size, _MappedFeatures()

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, LongVideo]:
        video = self.videos[key[0]]
        rows = torch.from_numpy(self.features.rows(video.features, 0, video.snippets))
        return F.adaptive_avg_pool1d(rows.T[None], self.size)[0], video


# ------------------------------------------------------------------------------------------------ writing


def write_class_files(folder: Path, subset: str, annotations: Annotations, classes: list[str]) -> None:
    """THUMOS14 per-class files of `subset` (one per class, possibly empty), lines `video start end`."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = CLASS_FILE_SUFFIXES[subset]
    lines: dict[str, list[str]] = {label: [] for label in classes}
    for name, (segments, labels) in annotations.items():
        for (start, end), label in zip(segments, labels, strict=True):
            lines[label].append(f"{name} {start:.1f} {end:.1f}\n")
    for label, rows in lines.items():
        write_text(folder / f"{label}{suffix}", "".join(rows))
