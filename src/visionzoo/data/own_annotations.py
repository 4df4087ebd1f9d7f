"""Your own action annotations -> the BSN/BMN annotation files, beside features that `visionzoo features` made.

Input: a plain CSV, one row per action, `video,start,end,label[,subset]` (seconds; a header row is optional; the
video is a file name or its stem), or an ActivityNet database JSON (`{"database": {id: {"subset", "annotations":
[{"segment": [s, e], "label"}]}}}`). Output, in the feature folder: `anet_anno_action.json` with the durations and
frame counts the extraction measured, and the `subset` column of `video_info_new.csv` (training / validation:
the given ones, else a seeded split; videos without annotations: testing).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints

from visionzoo.data.activitynet import (
    INFO_COLUMNS,
    MAX_NAME,
    VIDEO_ANNO,
    VIDEO_INFO,
    Database,
    MeasuredRow,
    write_video_info,
)
from visionzoo.data.video import is_video_file
from visionzoo.errors import VisionZooError
from visionzoo.files import Schema, read_json, read_text, too_many, validate

logger = logging.getLogger(__name__)

SUBSET_NAMES = {"training": "training", "train": "training", "validation": "validation", "val": "validation",
                "testing": "testing", "test": "testing"}  # fmt: skip
CSV_HEADER = ("video", "start", "end", "label", "subset")
MAX_ANNOTATION_BYTES = 256 << 20  # ~3 million rows: far past any hand-made annotation


def _subset_name(text: object) -> object:
    """'train', 'Val', ' test ' -> the ActivityNet names; '' or None -> None (the split decides)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str) and text.strip().lower() in SUBSET_NAMES:
        return SUBSET_NAMES[text.strip().lower()]
    raise ValueError("expected training, validation or testing")


class AnnotationRow(Schema):
    """One action of a CSV row (or of a JSON annotation): typed once, here."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)
    video: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    start: Annotated[float, Field(allow_inf_nan=False)]
    end: Annotated[float, Field(allow_inf_nan=False)]
    label: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    subset: Annotated[str | None, BeforeValidator(_subset_name)] = None


@dataclass
class Action:
    video: str  # as written in the file
    start: float
    end: float
    label: str
    subset: str | None  # training | validation | testing, or None: decided by the split
    where: str  # "row N" or "database.V.annotations[K]", for error lines
    order: int  # its place in the file, so that error lines come in file order


RowError = tuple[int, str]  # (place in the file, the error line)


def _action(values: dict[str, Any], where: str, order: int) -> Action | str:
    try:
        row = validate(AnnotationRow, values, where, "row")
    except VisionZooError as err:
        return str(err)
    return Action(row.video, row.start, row.end, row.label, row.subset, where, order)


def _csv_actions(path: Path) -> tuple[list[Action], list[RowError]]:
    actions, errors = [], []
    text = read_text(path, "annotation CSV", MAX_ANNOTATION_BYTES)
    for row_number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        where = f"row {row_number}"
        cells = [cell.strip() for cell in row]
        if not cells or not any(cells):
            continue
        if row_number == 1 and [c.lower() for c in cells] == list(CSV_HEADER[: len(cells)]):
            continue
        if len(cells) not in (4, 5):
            errors.append((row_number, f"{where}: {len(cells)} fields, expected video,start,end,label[,subset]"))
            continue
        found = _action(dict(zip(CSV_HEADER, cells, strict=False)), where, row_number)
        if isinstance(found, str):
            errors.append((row_number, found))
        else:
            actions.append(found)
    return actions, errors


def _json_actions(path: Path) -> tuple[list[Action], list[RowError]]:
    data = read_json(path, "annotation JSON", max_bytes=MAX_ANNOTATION_BYTES)
    # an ActivityNet database, or the BSN anet_anno_action.json layout (videos at the top level)
    bare = isinstance(data, dict) and "database" not in data
    database = validate(Database, {"database": data} if bare else data, str(path), "annotation JSON").database
    actions, errors = [], []
    for video, entry in database.items():
        for k, item in enumerate(entry.annotations):
            where, order = f"database.{video}.annotations[{k}]", len(actions) + len(errors)
            values = {"video": video, "start": item.segment[0], "end": item.segment[1], "label": item.label,
                      "subset": entry.subset}  # fmt: skip
            found = _action(values, where, order)
            if isinstance(found, str):
                errors.append((order, found))
            else:
                actions.append(found)
    return actions, errors


def read_actions(path: str | Path) -> tuple[list[Action], list[RowError]]:
    """The well-formed actions of a CSV or ActivityNet JSON, and an error line for each malformed row."""
    path = Path(path)
    if not path.is_file():
        raise VisionZooError(f"{path}: no such annotation file")
    return _json_actions(path) if path.suffix.lower() == ".json" else _csv_actions(path)


def raise_row_errors(path: str | Path, errors: list[RowError]) -> None:
    """All bad rows of `path` as one error: the first few in file order, then how many more."""
    if not errors:
        return
    lines = [line for _, line in sorted(errors)]
    if len(lines) == 1:
        raise VisionZooError(f"{path}: {lines[0]} (nothing written)")
    raise VisionZooError(f"{path}: {len(lines)} bad rows, nothing written: {too_many(lines)}")


def match_video(name: str, known: set[str]) -> str | None:
    """The feature folder's name for an annotation's video: as written, without a video extension, or with
    or without ActivityNet's "v_" prefix."""
    stem = Path(name).stem if is_video_file(name) else name
    for candidate in (name, stem, f"v_{stem}", stem[2:] if stem.startswith("v_") else None):
        if candidate in known:
            return candidate
    return None


def _read_info(path: Path) -> dict[str, tuple[MeasuredRow, dict[str, str]]]:
    """{video: (its typed row, the row as written)} of the feature folder's video_info_new.csv."""
    if not path.is_file():
        raise VisionZooError(f"{path}: missing; run visionzoo features first (it measures every video)")
    reader = csv.DictReader(io.StringIO(read_text(path, "video info CSV"), newline=""))
    missing = set(INFO_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise VisionZooError(f"{path}: lacks the columns {', '.join(sorted(missing))}")
    rows = {}
    for line, row in enumerate(reader, start=2):
        rows[row["video"]] = (validate(MeasuredRow, row, f"{path}: line {line}", "row"), row)
    return rows


def _split(videos: list[str], val_fraction: float, seed: int) -> set[str]:
    """The validation videos among those without a given subset: a seeded permutation, at least one when possible."""
    if not videos or val_fraction <= 0:
        return set()
    count = min(len(videos) - 1, max(1, round(len(videos) * val_fraction))) if len(videos) > 1 else 0
    order = np.random.default_rng(seed).permutation(len(videos))
    return {videos[i] for i in order[:count]}


def convert_annotations(
    annotations: str | Path, features: str | Path, val_fraction: float = 0.25, seed: int = 0, strict: bool = False
) -> dict[str, int]:
    """Write anet_anno_action.json and the subsets of video_info_new.csv in `features`; counts per subset.

    Rows of videos the folder has no features of are left out with one warning (an annotation file often
    covers more videos than were extracted); `strict` makes them errors."""
    from visionzoo.files import write_text

    if not 0 <= val_fraction < 1:
        raise VisionZooError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    features = Path(features)
    info = _read_info(features / VIDEO_INFO)
    actions, errors = read_actions(annotations)
    by_video, subsets, unknown = {}, {}, []
    for action in actions:
        name = match_video(action.video, set(info))
        if name is None:
            unknown.append((action.order, f"{action.where}: unknown video {action.video!r} (not in {VIDEO_INFO})"))
            continue
        measured = info[name][0]
        if not 0 <= action.start < action.end:
            problem = f"start {action.start:g} must be >= 0 and before end {action.end:g}"
        elif action.end > measured.seconds + 1.0 / measured.fps:  # one frame of slack for an end at the last frame
            problem = f"end {action.end:g} s is past the video's end ({measured.seconds:.3f} s)"
        elif action.subset and subsets.setdefault(name, action.subset) != action.subset:
            problem = f"subset {action.subset}, but an earlier row of {name} says {subsets[name]}"
        else:
            by_video.setdefault(name, []).append(action)
            continue
        errors.append((action.order, f"{action.where}: {problem}"))
    if strict:
        errors += unknown
    elif unknown:
        videos = len({line.rsplit("unknown video ", 1)[1] for _, line in unknown})
        logger.warning("%s: %d rows of %d videos without features in %s left out (--strict: an error)",
                       annotations, len(unknown), videos, features)  # fmt: skip
    raise_row_errors(annotations, errors)
    if not by_video:
        raise VisionZooError(f"{annotations}: no annotated video among the {len(info)} of {features}")
    validation = _split(sorted(name for name in by_video if name not in subsets), val_fraction, seed)
    database, rows, counts = {}, [], {}
    for name, (measured, row) in info.items():
        subset = subsets.get(name) or (
            ("validation" if name in validation else "training") if name in by_video else "testing"
        )
        counts[subset] = counts.get(subset, 0) + 1
        database[name] = {
            "duration_second": measured.seconds,
            "duration_frame": measured.numFrame,
            "feature_frame": measured.featureFrame,
            "annotations": [{"segment": [a.start, a.end], "label": a.label} for a in by_video.get(name, [])],
        }
        rows.append([row[column] if column != "subset" else subset for column in INFO_COLUMNS])
    write_text(features / VIDEO_ANNO, json.dumps(database))
    write_video_info(features / VIDEO_INFO, rows)
    return counts


def ground_truth_segments(path: str | Path) -> dict[str, np.ndarray]:
    """{video as written: [K, 2] seconds} of an annotation CSV or ActivityNet JSON, every subset (for plots)."""
    actions, errors = read_actions(path)
    raise_row_errors(path, errors)
    segments: dict[str, Any] = {}
    for action in actions:
        segments.setdefault(action.video, []).append([action.start, action.end])
    return {video: np.asarray(rows, dtype=np.float64) for video, rows in segments.items()}
