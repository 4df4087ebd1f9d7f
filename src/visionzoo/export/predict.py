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
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionzoo.data.transforms import normalize
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import ModelCard
from visionzoo.export.runtime import Runtime


def load_runtime(
    target: str, checkpoint: Path | None, onnx: Path | None, threads: int | None = None
) -> tuple[ModelCard, Runtime]:
    """(card, runtime) from `--checkpoint` (with a recipe or model name) or `--onnx` (its embedded card)."""
    from visionzoo.export.model_card import resolve_card
    from visionzoo.export.onnx import read_onnx_card
    from visionzoo.export.runtime import OnnxRuntime, TorchRuntime

    if (checkpoint is None) == (onnx is None):
        raise VisionZooError("predict: give exactly one of --checkpoint FILE or --onnx FILE")
    if onnx is not None:
        card = read_onnx_card(onnx)
        if target not in (card.model, card.recipe):
            raise VisionZooError(f"--onnx {onnx}: a {card.model} export (recipe {card.recipe}), not {target}")
        return card, OnnxRuntime(onnx, threads)
    card = resolve_card(target, checkpoint)
    return card, TorchRuntime(card.build_model(pretrained=checkpoint))


# ------------------------------------------------------------------------------------------------ images


def input_geometry(preprocessing: dict[str, Any], width: int, height: int) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of a width x height picture as evaluation prepares it:
    the eval crop (`eval_resize`), or a whole-picture resize to img_size (CIFAR recipes). Images and video frames
    (`visionzoo.data.video`) both take their geometry from here."""
    from visionzoo.data.transforms import eval_resize

    size = int(preprocessing["img_size"])
    if preprocessing.get("resize") == "whole":
        return size, size, 0, 0
    return eval_resize(width, height, size, float(preprocessing["crop_pct"]))


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


def expand_inputs(inputs: list[Path], accept: Callable[[str], bool], what: str) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted) to the files `accept` admits."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(
                Path(dirpath) / name
                for dirpath, _, names in os.walk(item, followlinks=True)
                for name in names
                if accept(name)
            )
            if not found:
                raise VisionZooError(f"{item}: no {what} in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise VisionZooError(f"{item}: no such file or folder")
    return files


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
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps([{"file": p.file, "topk": p.topk} for p in predictions], indent=2) + "\n")
    elif path.suffix == ".csv":
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "rank", "index", "name", "probability"])
            for p in predictions:
                for rank, entry in enumerate(p.topk, start=1):
                    writer.writerow([p.file, rank, entry["index"], entry["name"], f"{entry['probability']:.6f}"])
    else:
        raise VisionZooError(f"--output {path}: expected a .csv or .json file")
    return path


# --------------------------------------------------------------------------------------------- proposals


def read_durations(path: Path) -> dict[str, float]:
    """{video name: seconds the proposals are scaled to} from a video_info CSV or an annotation JSON.

    The reference's scale: (duration_frame // 16 * 16) / duration_frame * duration_second.
    """
    from visionzoo.tasks.postprocess import reference_duration

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
