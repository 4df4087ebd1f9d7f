"""A folder of per-snippet video features in the BSN/BMN layout: what `visionzoo features` writes, `train` reads.

  features.json              how the features were made (`FeatureSpec`); `train` records it, `predict` checks it
  csv_mean_<T>/<video>.csv   header f0..f{D-1}, T rows (BSN's `poolData` rescale of the snippets); layout "bsn"
  snippets/<video>.npy       float32 [L, D], row i = snippet i, frames [i*s, (i+1)*s) at the features' rate (the
                             video's own, or a clip model's protocol fps); layout "snippets" (what bmn_thumos14
                             reads), or with keep_snippets
  videos/<video>.json        the video's record, written last: a video is finished once it exists
  video_info_new.csv         assembled from the records: video,numFrame,seconds,fps,rfps,subset,featureFrame
Each file is written under a temporary name and renamed, so a killed run leaves whole files only (and temporary
files tagged with host and pid, which the next run removes); several processes (shards) can fill one folder at once.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, JsonValue, StringConstraints

from visionzoo.data.activitynet import VIDEO_INFO, format_feature_csv, pool_snippets, write_video_info
from visionzoo.data.video import VideoMeta
from visionzoo.errors import VisionZooError
from visionzoo.files import (
    OpenSchema,
    exclusive_lock,
    is_temporary,
    read_json,
    remove_stale_temporaries,
    write_json,
    write_npy,
    write_text,
)

FEATURES_FORMAT = "visionzoo-features-v1"
FEATURES_JSON = "features.json"
RECORDS_DIR, SNIPPETS_DIR = "videos", "snippets"
UNLABELLED_SUBSET = "testing"  # ActivityNet's name for videos without public annotations
# What makes two feature sets interchangeable: a BMN trained on one kind is refused the others.
KIND_KEYS = ("backbone", "weights_sha256", "init_seed", "layer", "img_size", "snippet_frames", "temporal_scale",
             "feat_dim")  # fmt: skip
# Compared too, but absent from features.json written before clip models (read as None there).
CLIP_KIND_KEYS = ("protocol", "weights_flow_sha256")
LAYOUTS = ("bsn", "snippets")


def feature_dir_name(temporal_scale: int) -> str:
    return f"csv_mean_{temporal_scale}"


@dataclass(frozen=True)
class FeatureSpec:
    """features.json: how a folder's features were made."""

    backbone: str
    weights: str | None  # the --pretrained file as given; None: random weights drawn with init_seed
    weights_sha256: str | None
    init_seed: int | None
    layer: str
    img_size: int
    snippet_frames: int
    temporal_scale: int
    feat_dim: int
    preprocessing: dict[str, Any]
    amp: str = "off"  # the precision the backbone ran in (bf16 features differ from fp32 ones in the 3rd digit)
    runtime: str = "torch"  # what ran it (export.runtime): OpenVINO's and PyTorch's bf16 differ in rounding
    frame: str = "centre frame of each snippet"
    rescale: str = "BSN/BMN poolData: snippet centres, linear interpolation, 3 points per anchor, mean"
    layout: str = "bsn"  # bsn: csv_mean_<T>/ rescaled rows; snippets: snippets/<video>.npy at the clip stride
    protocol: dict[str, Any] | None = None  # clip models: the ClipProtocol the clips were cut with (per stream)
    weights_flow: str | None = None  # two-stream I3D: the flow stream's file (`weights` is the RGB one)
    weights_flow_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        feature_dir = feature_dir_name(self.temporal_scale) if self.layout == "bsn" else SNIPPETS_DIR
        return {"format": FEATURES_FORMAT} | asdict(self) | {"feature_dir": feature_dir}

    @classmethod
    def from_dict(cls, found: dict[str, Any]) -> FeatureSpec:
        return cls(**{key: found[key] for key in cls.__dataclass_fields__ if key in found})


Size = Annotated[int, Field(ge=1, le=1 << 20)]
Text = Annotated[str, StringConstraints(max_length=4096)]


class FeatureDescription(OpenSchema):
    """features.json as read: a BSN-layout folder's `FeatureSpec`, or per-video snippet features' stride and size
    (which hold only some keys); each key typed, so comparisons see values, not their spelling."""

    format: Literal["visionzoo-features-v1"]  # FEATURES_FORMAT
    backbone: Text | None = None
    weights: Text | None = None
    weights_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    init_seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    layer: Text | None = None
    img_size: Size | None = None
    snippet_frames: Size | None = None
    temporal_scale: Size | None = None
    feat_dim: Size | None = None
    feature_dir: Text | None = None
    preprocessing: dict[str, JsonValue] | None = None
    amp: Text | None = None
    runtime: Text | None = None


class RecordFile(OpenSchema):
    """videos/<video>.json: what the extraction measured of one video (written last: the video is finished)."""

    video: Text
    numFrame: Annotated[int, Field(ge=1)]  # noqa: N815 (BSN's column names)
    seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    fps: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    featureFrame: Annotated[int, Field(ge=0)]  # noqa: N815
    snippets_file: bool = False


def read_feature_description(path: Path) -> dict[str, Any]:
    """Any features.json, typed: the keys it holds."""
    return read_json(path, "features description", FeatureDescription).model_dump(exclude_unset=True)


def write_feature_description(path: Path, feat_dim: int, snippet_frames: int, **description: object) -> None:
    """features.json of per-video snippet features (THUMOS14 layout): their size, stride and origin."""
    write_json(path, {"format": FEATURES_FORMAT, "snippet_frames": snippet_frames, "feat_dim": feat_dim} | description)


def read_features_json(directory: Path) -> dict[str, Any] | None:
    """The folder's features.json, checked; None when there is none (features made elsewhere)."""
    path = Path(directory) / FEATURES_JSON
    if not path.is_file():
        return None
    spec = read_feature_description(path)
    missing = [key for key in KIND_KEYS if key not in spec]
    if missing:
        raise VisionZooError(f"{path}: lacks {', '.join(missing)}")
    return spec


def _weights(spec: dict[str, Any]) -> str:
    if spec.get("weights_sha256") is None:
        return f"random weights (seed {spec.get('init_seed')})"
    return f"{Path(str(spec.get('weights'))).name} (sha256 {spec['weights_sha256'][:12]})"


def kind_differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'setting found vs wanted' for each setting in which two feature descriptions differ (weights: by hash).
    Both are compared as JSON holds them (a description made in memory has tuples where a file has lists)."""
    found, wanted = json.loads(json.dumps(found)), json.loads(json.dumps(wanted))
    differences = [
        f"{key} {found.get(key)} vs {wanted.get(key)}"
        for key in KIND_KEYS + CLIP_KIND_KEYS
        if key not in ("weights_sha256", "init_seed") and found.get(key) != wanted.get(key)
    ]
    same_file = found.get("weights_sha256") == wanted.get("weights_sha256")
    same_seed = found.get("weights_sha256") is not None or found.get("init_seed") == wanted.get("init_seed")
    if not (same_file and same_seed):
        differences.append(f"weights {_weights(found)} vs {_weights(wanted)}")
    return differences


class FeatureFolder:
    """An output folder of one kind of features: its files, what is finished, the assembled video_info_new.csv."""

    def __init__(self, root: Path, spec: FeatureSpec) -> None:
        self.root, self.spec = Path(root), spec
        self.csv_dir = self.root / feature_dir_name(spec.temporal_scale)
        self.records, self.snippets = self.root / RECORDS_DIR, self.root / SNIPPETS_DIR

    def claim(self) -> None:
        """Write features.json, or check that the folder already holds this kind of features."""
        found = read_features_json(self.root)
        if found is not None:
            differences = kind_differences(found, self.spec.to_dict())
            if differences:
                raise VisionZooError(
                    f"{self.root}: holds features of another kind ({'; '.join(differences)}); choose another --output"
                )
            return
        # a folder with other files than the temporary ones of a run killed before it wrote features.json
        others = self.root.is_dir() and any(p.is_file() and not is_temporary(p.name) for p in self.root.rglob("*"))
        if self.root.exists() and (not self.root.is_dir() or others):
            raise VisionZooError(
                f"--output {self.root}: exists and is not a feature folder (no {FEATURES_JSON}); choose another one"
            )
        write_json(self.root / FEATURES_JSON, self.spec.to_dict())

    def read_record(self, name: str) -> RecordFile:
        return read_json(self.records / f"{name}.json", "video record", RecordFile)

    def record(self, name: str) -> dict[str, Any] | None:
        """The video's record, typed; None when it is missing or broken (then the video is extracted again)."""
        try:
            return self.read_record(name).model_dump()
        except VisionZooError:
            return None

    def finished(self, name: str, need_snippets: bool) -> bool:
        record = self.record(name)
        return record is not None and (record["snippets_file"] or not need_snippets)

    def write(self, name: str, source: Path, snippets: np.ndarray, meta: VideoMeta, keep_snippets: bool) -> None:
        """The video's CSV (and snippets), then its record: each atomically, the record last."""
        s, T = self.spec.snippet_frames, self.spec.temporal_scale
        if self.spec.layout == "bsn":
            pooled = pool_snippets(snippets, T, s, meta.frames, meta.seconds)
            write_text(self.csv_dir / f"{name}.csv", format_feature_csv(pooled))
        keep_snippets = keep_snippets or self.spec.layout == "snippets"
        if keep_snippets:
            write_npy(self.snippets / f"{name}.npy", np.ascontiguousarray(snippets, dtype=np.float32))
        record = {
            "video": name,
            "source": str(source),
            "numFrame": meta.frames,
            "seconds": meta.seconds,
            "fps": meta.fps,
            "featureFrame": meta.snippets * s,
            "snippets": meta.snippets,
            "width": meta.width,
            "height": meta.height,
            "rotation": meta.rotation,
            "snippets_file": keep_snippets,
        }
        write_text(self.records / f"{name}.json", json.dumps(record))

    def remove_leftovers(self, all_owners: bool = False) -> int:
        """Delete temporary files of killed runs: this machine's dead processes, or every owner's (`--merge`)."""
        folders = (self.root, self.csv_dir, self.snippets, self.records)
        return sum(remove_stale_temporaries(folder, every_writer=all_owners) for folder in folders)

    def merge(self) -> Path:
        """video_info_new.csv from every record in the folder (all shards'); subsets already assigned are kept."""
        with exclusive_lock(self.root / FEATURES_JSON):  # shards finishing together: the last one sees all
            subsets = read_subsets(self.root / VIDEO_INFO)
            rows = []
            for path in sorted(self.records.glob("*.json")) if self.records.is_dir() else ():
                r = self.read_record(path.stem)
                subset = subsets.get(path.stem, UNLABELLED_SUBSET)
                rows.append([path.stem, r.numFrame, r.seconds, r.fps, r.numFrame / r.seconds, subset, r.featureFrame])
            write_video_info(self.root / VIDEO_INFO, rows)
        return self.root / VIDEO_INFO


def read_subsets(path: Path) -> dict[str, str]:
    """{video: subset} of an existing video_info_new.csv (empty when there is none)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["video"]: row["subset"] for row in csv.DictReader(handle) if row.get("video")}
