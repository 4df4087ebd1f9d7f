"""Prediction on new inputs with a PyTorch checkpoint or an ONNX file, through one pre- and post-processing path.

Only the runtime differs (`export.runtime`: float32 batch in, numpy outputs out). Images are prepared as
evaluation prepares them: the recipe's eval crop (as `EvalTransform`) for image-folder recipes, a whole-image
resize to the training size for CIFAR-10 recipes (its loader sees whole 32x32 images), then the same
`normalize` as training. BMN features are read by the dataset's CSV reader and post-processed by the task's
candidate scoring and Soft-NMS.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionzoo.data.transforms import input_geometry, normalize
from visionzoo.engine.precision import compute_dtype, resolve_amp
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard
from visionzoo.export.runtime import Runtime
from visionzoo.files import require_regular_file, write_csv, write_json

logger = logging.getLogger(__name__)


def load_runtime(
    target: str,
    checkpoint: Path | None,
    onnx: Path | None,
    threads: int | None = None,
    amp: str = "auto",
    runtime: str = "auto",
) -> tuple[ModelCard, Runtime]:
    """(card, runtime) from `--checkpoint` (with a recipe or model name; run at `amp` in `runtime`: see
    `export.runtime.load_runtime`) or `--onnx` (its embedded card; float32 or int8, in onnxruntime or
    OpenVINO)."""
    from visionzoo.export import runtime as runtimes
    from visionzoo.export.model_card import resolve_card
    from visionzoo.export.onnx import read_onnx_card

    if (checkpoint is None) == (onnx is None):
        raise VisionZooError("predict: give exactly one of --checkpoint FILE or --onnx FILE")
    if onnx is not None:
        card = read_onnx_card(onnx)
        if target not in (card.model, card.recipe):
            raise VisionZooError(f"--onnx {onnx}: a {card.model} export (recipe {card.recipe}), not {target}")
        return card, runtimes.load_runtime(card, onnx, runtime, threads=threads)
    card = resolve_card(target, checkpoint)
    precision = resolve_amp(amp, torch.device("cpu"))
    logger.info("%s", precision.describe())
    return card, runtimes.load_runtime(card, checkpoint, runtime, compute_dtype(precision.resolved), threads)


# ------------------------------------------------------------------------------------------------ images


def load_image(path: Path, card: ModelCard) -> torch.Tensor:
    """uint8 [3, S, S] as evaluation sees the image: the eval crop, or a whole-image resize (CIFAR recipes)."""
    from visionzoo.data.transforms import open_image, resize_crop, to_chw_tensor

    prep = card.preprocessing
    size = int(prep["img_size"])
    try:
        with open_image(path) as image:
            new_w, new_h, left, top = input_geometry(prep, *image.size)
            scale_x, scale_y = image.width / new_w, image.height / new_h  # the crop as a box of the source
            box = (left * scale_x, top * scale_y, size * scale_x, size * scale_y)
            return to_chw_tensor(resize_crop(image, box, (size, size), prep["interpolation"]))
    except VisionZooError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure names the file
        raise VisionZooError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


@dataclass
class Prediction:
    file: str
    topk: list[dict[str, Any]]  # rank order: {"index", "name", "probability"}


def predict_images(
    card: ModelCard, runtime: Runtime, files: list[Path], topk: int = 5, batch_size: int = 16
) -> list[Prediction]:
    """Top-k classes (softmax probabilities, names from the card when known) of each image file."""
    names = card.class_names
    predictions = []
    for begin in range(0, len(files), batch_size):
        chunk = files[begin : begin + batch_size]
        images = torch.stack([load_image(path, card) for path in chunk])
        (logits,) = runtime(normalize(images, card.preprocessing["mean"], card.preprocessing["std"]).numpy())
        probs = torch.from_numpy(logits).double().softmax(dim=1)
        values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
        for path, row_values, row_indices in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            top = [
                {"index": i, "name": names[i] if names else str(i), "probability": p}
                for i, p in zip(row_indices, row_values, strict=True)
            ]
            predictions.append(Prediction(str(path), top))
    return predictions


def write_predictions(path: Path, predictions: list[Prediction]) -> Path:
    """CSV (one row per file and rank: file, rank, index, name, probability) or JSON (a list per file)."""
    if path.suffix == ".json":
        write_json(path, [{"file": p.file, "topk": p.topk} for p in predictions])
    elif path.suffix == ".csv":
        rows = [
            [p.file, rank, entry["index"], entry["name"], f"{entry['probability']:.6f}"]
            for p in predictions
            for rank, entry in enumerate(p.topk, start=1)
        ]
        write_csv(path, ["file", "rank", "index", "name", "probability"], rows)
    else:
        raise VisionZooError(f"--output {path}: expected a .csv or .json file")
    return path


# --------------------------------------------------------------------------------------------- proposals


def read_durations(path: Path) -> dict[str, float]:
    """{video name: seconds the proposals are scaled to} from a video_info CSV or an annotation JSON.

    The reference's scale: (duration_frame // 16 * 16) / duration_frame * duration_second.
    """
    from visionzoo.tasks.postprocess import reference_duration

    require_regular_file(path, "video info file")
    if path.suffix == ".json":
        try:
            database = json.loads(path.read_text())
            return {
                name: reference_duration(float(v["duration_second"]), int(v["duration_frame"]))
                for name, v in database.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise VisionZooError(f"{path}: expected an annotation JSON with duration_second/frame ({err})") from None
    try:
        with open(path, newline="") as handle:
            return {
                row["video"]: reference_duration(float(row["seconds"]), int(row["numFrame"]))
                for row in csv.DictReader(handle)
            }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise VisionZooError(f"{path}: expected a video_info CSV with video,numFrame,seconds ({err})") from None


def video_durations(
    files: list[Path], duration_second: list[float] | None, video_info: Path | None
) -> tuple[list[float], bool]:
    """(duration per file, True when they are seconds); without either source 1.0 = the feature span."""
    if duration_second:
        if len(duration_second) not in (1, len(files)):
            raise VisionZooError(
                f"--duration-second: give one value or one per feature file ({len(files)}), got {len(duration_second)}"
            )
        return (duration_second * len(files) if len(duration_second) == 1 else list(duration_second)), True
    if video_info is not None:
        known = read_durations(video_info)
        missing = [f.stem for f in files if f.stem not in known and f"v_{f.stem}" not in known]
        if missing:
            raise VisionZooError(f"{video_info}: no duration for {len(missing)} video(s), e.g. {missing[0]}")
        return [known[f.stem] if f.stem in known else known[f"v_{f.stem}"] for f in files], True
    return [1.0] * len(files), False


def predict_proposals(
    card: ModelCard, runtime: Runtime, files: list[Path], durations: list[float], batch_size: int = 8
) -> dict[str, list[dict[str, Any]]]:
    """{video id: proposals (score, segment)} of each feature CSV, after the task's scoring and Soft-NMS."""
    from visionzoo.data.activitynet import read_feature_csv
    from visionzoo.tasks import postprocess

    feat_dim, temporal_scale = card.input_shape
    results: dict[str, list[dict[str, Any]]] = {}
    for begin in range(0, len(files), batch_size):
        chunk = files[begin : begin + batch_size]
        features = np.stack([read_feature_csv(path, temporal_scale, feat_dim).T for path in chunk])
        conf_map, start, end = (torch.from_numpy(out) for out in runtime(np.ascontiguousarray(features)))
        proposals = postprocess.post_process(
            postprocess.score_candidates(start, end, conf_map),
            durations[begin : begin + len(chunk)],
            temporal_scale,
            postprocess.SoftNMSSettings.of(card.postprocessing),
        )
        for path, found in zip(chunk, proposals, strict=True):
            results[postprocess.video_id(path.stem)] = found
    return results


def _long_video(path: Path, feat_dim: int, snippet_frames: int, known: dict[str, tuple[float, float]]):
    """The LongVideo of one feature file: its snippet stride from features.json beside or above it (else the
    recipe's), its duration and fps from the info CSV (else one snippet counts as one second)."""
    from visionzoo.data.feature_folder import FEATURES_JSON
    from visionzoo.data.thumos14 import LongVideo, prepare_features, snippet_frames_of

    root = path.parent.parent if (path.parent.parent / FEATURES_JSON).is_file() else path.parent
    frames = snippet_frames_of(root, snippet_frames, feat_dim)
    ((array, length),) = prepare_features(path.parent, [path.stem], feat_dim)
    seconds, fps = known.get(path.stem, (float(length), float(frames)))
    return LongVideo(path.stem, "", seconds, fps, frames, length, array, np.zeros((0, 2)), [])


def predict_long_videos(
    card: ModelCard, runtime: Runtime, files: list[Path], video_info: Path | None, batch_size: int = 8
) -> dict[str, list[dict[str, Any]]]:
    """{video id: proposals} of snippet feature files of any length (.npy or CSV), as evaluation makes them: the
    recipe's windows, BMN's post-processing per window, mapped back to the video and Soft-NMS'd again over its
    merged windows. Seconds need each video's fps (`video_info`); without it positions are in snippets."""
    from visionzoo.data.thumos14 import SnippetWindows, read_video_info
    from visionzoo.tasks import postprocess
    from visionzoo.tasks.windowed_proposals import merge_video, proposals_of_windows

    prep, post = card.preprocessing, card.postprocessing
    feat_dim, size = card.input_shape
    known = {name: (seconds, fps) for name, _, seconds, fps in read_video_info(video_info)} if video_info else {}
    missing = [path.stem for path in files if video_info is not None and path.stem not in known]
    if missing:
        raise VisionZooError(f"{video_info}: no fps for {len(missing)} video(s), e.g. {missing[0]}")
    videos = [_long_video(path, feat_dim, int(prep.get("snippet_frames") or 0), known) for path in files]
    windows = SnippetWindows(videos, size, float(prep["window_overlap"]), 1.0, drop_empty=False, feat_dim=feat_dim)
    settings = postprocess.SoftNMSSettings.of(post)
    found: dict[str, list[np.ndarray]] = {video.name: [] for video in videos}
    for begin in range(0, len(windows), batch_size):
        items = [windows[(index, 0)] for index in range(begin, min(begin + batch_size, len(windows)))]
        outputs = runtime(np.ascontiguousarray(torch.stack([item[0] for item in items]).numpy()))
        records = [item[2] for item in items]
        proposals = proposals_of_windows(tuple(torch.from_numpy(out) for out in outputs), records, settings)
        for record, rows in zip(records, proposals, strict=True):
            found[record.video.name].append(rows)
    alpha, top_k = float(post["merge_soft_nms_alpha"]), int(post["merge_max_proposals"])
    return {postprocess.video_id(name): merge_video(rows, alpha, top_k) for name, rows in found.items()}


# ----------------------------------------------------------------------------------------------- classes


def predict_video_classes(
    card: ModelCard, runtime: Runtime, files: list[Path], batch_size: int = 16
) -> dict[str, list[dict[str, Any]]]:
    """{video id: [{"label", "score"}], best first} of each feature CSV of a video classifier (softmax scores):
    the ActivityNet classification layout that `detect`, `--classes` and `tasks.detection.classes_of` read."""
    from visionzoo.data.activitynet import read_feature_csv
    from visionzoo.tasks.postprocess import video_id
    from visionzoo.tasks.video_classification import CLASSES_WRITTEN

    feat_dim, temporal_scale = card.input_shape
    results: dict[str, list[dict[str, Any]]] = {}
    for begin in range(0, len(files), batch_size):
        chunk = files[begin : begin + batch_size]
        features = np.stack([read_feature_csv(path, temporal_scale, feat_dim).T for path in chunk])
        (logits,) = runtime(np.ascontiguousarray(features))
        probabilities = torch.from_numpy(logits).double().softmax(dim=1)
        names = card.class_names or [str(c) for c in range(probabilities.shape[1])]
        values, indices = probabilities.topk(min(CLASSES_WRITTEN, probabilities.shape[1]), dim=1)
        for path, row_values, row_indices in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            results[video_id(path.stem)] = [
                {"label": names[c], "score": p} for c, p in zip(row_indices, row_values, strict=True)
            ]
    return results
