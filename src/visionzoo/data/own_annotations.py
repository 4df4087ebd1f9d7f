"""Your own action annotations -> the BSN/BMN annotation files, beside features that `visionzoo features` made.

Input: a plain CSV, one row per action, `video,start,end,label[,subset]` (seconds; a header row is optional; the
video is a file name or its stem), or an ActivityNet database JSON (`{"database": {id: {"subset", "annotations":
[{"segment": [s, e], "label"}]}}}`). Output, in the feature folder: `anet_anno_action.json` with the durations and
frame counts the extraction measured, and the `subset` column of `video_info_new.csv` (training / validation:
the given ones, else a seeded split; videos without annotations: testing).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.data.activitynet import INFO_COLUMNS, VIDEO_ANNO, VIDEO_INFO, write_video_info
from visionzoo.data.video import is_video_file
from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

SUBSET_NAMES = {"training": "training", "train": "training", "validation": "validation", "val": "validation",
                "testing": "testing", "test": "testing"}  # fmt: skip
CSV_HEADER = ("video", "start", "end", "label", "subset")


@dataclass
class Action:
    video: str  # as written in the file
    start: float
    end: float
    label: str
    subset: str | None  # training | validation | testing, or None: decided by the split
    where: str  # "file: row N" or "file: video V, annotation K", for error lines
    order: int  # its place in the file, so that error lines come in file order


RowError = tuple[int, str]  # (place in the file, the error line)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _subset(text: str | None) -> str | None:
    return SUBSET_NAMES.get(text.strip().lower()) if text and text.strip() else None


def _csv_actions(path: Path) -> tuple[list[Action], list[RowError]]:
    actions, errors = [], []
    with open(path, newline="") as handle:
        for row_number, row in enumerate(csv.reader(handle), start=1):
            where = f"{path}: row {row_number}"
            cells = [cell.strip() for cell in row]
            if not cells or not any(cells):
                continue
            if row_number == 1 and [c.lower() for c in cells] == list(CSV_HEADER[: len(cells)]):
                continue
            if len(cells) not in (4, 5):
                errors.append((row_number, f"{where}: {len(cells)} fields, expected video,start,end,label[,subset]"))
                continue
            start, end = _number(cells[1]), _number(cells[2])
            subset = _subset(cells[4]) if len(cells) == 5 else None
            if start is None or end is None:
                problem = f"start and end must be numbers (seconds), got {cells[1]!r}, {cells[2]!r}"
            elif len(cells) == 5 and cells[4] and subset is None:
                problem = f"subset {cells[4]!r}, expected training, validation or testing"
            elif not cells[0] or not cells[3]:
                problem = "empty video name or label"
            else:
                actions.append(Action(cells[0], start, end, cells[3], subset, where, row_number))
                continue
            errors.append((row_number, f"{where}: {problem}"))
    return actions, errors


def _json_actions(path: Path) -> tuple[list[Action], list[RowError]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise VisionZooError(f"{path}: not valid JSON ({err})") from None
    # an ActivityNet database, or the BSN anet_anno_action.json layout (videos at the top level)
    database = data.get("database", data) if isinstance(data, dict) else None
    if not isinstance(database, dict) or not all(isinstance(v, dict) and "annotations" in v for v in database.values()):
        raise VisionZooError(f"{path}: not an ActivityNet database JSON (needs 'database': {{video: {{...}}}})")
    actions, errors = [], []
    for video, entry in database.items():
        items, subset = entry["annotations"], _subset(entry.get("subset"))
        for k, item in enumerate(items if isinstance(items, list) else [None]):
            where = f"{path}: video {video}, annotation {k}"
            segment = item.get("segment") if isinstance(item, dict) else None
            values = [_number(str(v)) for v in segment] if isinstance(segment, list) and len(segment) == 2 else []
            if len(values) != 2 or None in values or not isinstance(item.get("label"), str):
                errors.append(
                    (len(actions) + len(errors), f"{where}: expected {{'segment': [start, end], 'label': name}}")
                )
                continue
            actions.append(
                Action(video, values[0], values[1], item["label"], subset, where, len(actions) + len(errors))
            )
    return actions, errors


def read_actions(path: str | Path) -> tuple[list[Action], list[RowError]]:
    """The well-formed actions of a CSV or ActivityNet JSON, and an error line for each malformed row."""
    path = Path(path)
    if not path.is_file():
        raise VisionZooError(f"{path}: no such annotation file")
    return _json_actions(path) if path.suffix.lower() == ".json" else _csv_actions(path)


def raise_row_errors(errors: list[RowError]) -> None:
    """One error line per bad row, in file order: all but the last logged, the last raised (the exit status)."""
    if not errors:
        return
    lines = [line for _, line in sorted(errors)]
    for line in lines[:-1]:
        logger.error("%s", line)
    more = f" ({len(lines)} bad rows in all; nothing written)" if len(lines) > 1 else " (nothing written)"
    raise VisionZooError(lines[-1] + more)


def match_video(name: str, known: set[str]) -> str | None:
    """The feature folder's name for an annotation's video: as written, without a video extension, or with
    or without ActivityNet's "v_" prefix."""
    stem = Path(name).stem if is_video_file(name) else name
    for candidate in (name, stem, f"v_{stem}", stem[2:] if stem.startswith("v_") else None):
        if candidate in known:
            return candidate
    return None


def _read_info(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        raise VisionZooError(f"{path}: missing; run visionzoo features first (it measures every video)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(INFO_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise VisionZooError(f"{path}: lacks the columns {', '.join(sorted(missing))}")
        return {row["video"]: row for row in reader}


def _split(videos: list[str], val_fraction: float, seed: int) -> set[str]:
    """The validation videos among those without a given subset: a seeded permutation, at least one when possible."""
    if not videos or val_fraction <= 0:
        return set()
    count = min(len(videos) - 1, max(1, round(len(videos) * val_fraction))) if len(videos) > 1 else 0
    order = np.random.default_rng(seed).permutation(len(videos))
    return {videos[i] for i in order[:count]}


def convert_annotations(
    annotations: str | Path, features: str | Path, val_fraction: float = 0.25, seed: int = 0
) -> dict[str, int]:
    """Write anet_anno_action.json and the subsets of video_info_new.csv in `features`; counts per subset."""
    from visionzoo.files import write_text

    if not 0 <= val_fraction < 1:
        raise VisionZooError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    features = Path(features)
    info = _read_info(features / VIDEO_INFO)
    actions, errors = read_actions(annotations)
    by_video, subsets = {}, {}
    for action in actions:
        name = match_video(action.video, set(info))
        if name is None:
            errors.append((action.order, f"{action.where}: unknown video {action.video!r} (not in {VIDEO_INFO})"))
            continue
        seconds, fps = float(info[name]["seconds"]), float(info[name]["fps"])
        if not 0 <= action.start < action.end:
            problem = f"start {action.start:g} must be >= 0 and before end {action.end:g}"
        elif action.end > seconds + 1.0 / fps:  # one frame of slack for an end marked at the last frame
            problem = f"end {action.end:g} s is past the video's end ({seconds:.3f} s)"
        elif action.subset and subsets.setdefault(name, action.subset) != action.subset:
            problem = f"subset {action.subset}, but an earlier row of {name} says {subsets[name]}"
        else:
            by_video.setdefault(name, []).append(action)
            continue
        errors.append((action.order, f"{action.where}: {problem}"))
    raise_row_errors(errors)
    if not by_video:
        raise VisionZooError(f"{annotations}: no annotated video among the {len(info)} of {features}")
    validation = _split(sorted(name for name in by_video if name not in subsets), val_fraction, seed)
    database, rows, counts = {}, [], {}
    for name, row in info.items():
        subset = subsets.get(name) or (
            ("validation" if name in validation else "training") if name in by_video else "testing"
        )
        counts[subset] = counts.get(subset, 0) + 1
        database[name] = {
            "duration_second": float(row["seconds"]),
            "duration_frame": int(row["numFrame"]),
            "feature_frame": int(row["featureFrame"]),
            "annotations": [{"segment": [a.start, a.end], "label": a.label} for a in by_video.get(name, [])],
        }
        rows.append([row[column] if column != "subset" else subset for column in INFO_COLUMNS])
    write_text(features / VIDEO_ANNO, json.dumps(database))
    write_video_info(features / VIDEO_INFO, rows)
    return counts


def ground_truth_segments(path: str | Path) -> dict[str, np.ndarray]:
    """{video as written: [K, 2] seconds} of an annotation CSV or ActivityNet JSON, every subset (for plots)."""
    actions, errors = read_actions(path)
    raise_row_errors(errors)
    segments: dict[str, Any] = {}
    for action in actions:
        segments.setdefault(action.video, []).append([action.start, action.end])
    return {video: np.asarray(rows, dtype=np.float64) for video, rows in segments.items()}
