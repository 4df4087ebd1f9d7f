"""BMN on raw videos: features (cached) -> BMN -> Soft-NMS -> proposals in seconds (x a video classifier's classes:
labelled detections), an SRT and a timeline per video, and `index.html` over every video of the output folder.

The features are made as the checkpoint's training features were (its model card records their features.json;
another kind of features is refused in one line), into a feature folder in the cache keyed by that kind, so a
video whose features are there is not decoded again. The proposals are in seconds of the real video: the span
the snippets cover, min(featureFrame, numFrame) / numFrame * seconds (with 16-frame snippets, the reference's
(numFrame // 16 * 16) / numFrame * seconds).

An output folder gathers results: a later run adds its videos to proposals.json, detections.json and
`videos.json` (each video's file, duration and ground truth, what the viewer needs) and replaces only the videos
it predicts again, so nothing a user produced is lost to another run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import Field, RootModel

from visionzoo.errors import VisionZooError
from visionzoo.files import OpenSchema, save_figure

if TYPE_CHECKING:  # the CLI imports this module to build its parser: heavy imports wait until used
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.export.feature_extractor import ExtractionSettings
    from visionzoo.export.model_card import ModelCard
    from visionzoo.export.runtime import Runtime

logger = logging.getLogger(__name__)

THUMBNAILS = 8  # frames along each video in its timeline PNG and on the page
SHOWN = 10  # proposals per video in the SRT and the timeline
PROPOSALS, DETECTIONS, VIDEOS = "proposals.json", "detections.json", "videos.json"
VIEWER = "index.html"


def trained_features(card: ModelCard) -> dict[str, Any]:
    """The extraction settings of the checkpoint's training features (its features.json), as defaults for the
    extraction of new videos; the BMN's own T."""
    trained = card.preprocessing.get("features") or {}
    keys = ("backbone", "layer", "img_size", "snippet_frames", "init_seed", "amp")
    return {key: trained.get(key) for key in keys} | {"temporal_scale": card.input_shape[1]}


def check_settings(card: ModelCard, settings: ExtractionSettings) -> None:
    if settings.temporal_scale != card.input_shape[1]:
        raise VisionZooError(
            f"--temporal-scale {settings.temporal_scale}: this {card.model} takes T={card.input_shape[1]}"
        )


def _video_key(path: Path) -> str:
    """The cache's name for a video file: its stem and a hash of where it is, its size and its time stamp."""
    stat = path.stat()
    tag = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    return f"{path.stem}-{tag}"


def video_features(
    card: ModelCard, settings: ExtractionSettings, videos: list[tuple[str, Path]], source: Path
) -> FeatureFolder:
    """The feature folder (in the cache) holding every readable video's features, extracted where missing;
    features of another kind than the BMN (`source`) was trained on are refused."""
    from visionzoo.data.cache import cache_dir
    from visionzoo.data.feature_folder import FeatureFolder, kind_differences
    from visionzoo.export.feature_extractor import extract_features, load_featurizer

    check_settings(card, settings)
    featurizer = load_featurizer(settings)
    spec = featurizer.spec()
    wanted, trained = spec.to_dict(), card.preprocessing.get("features") or {}
    differences = kind_differences(trained, wanted) if trained else []
    if differences or spec.feat_dim != card.input_shape[0]:
        why = "; ".join(differences) or f"feat_dim {card.input_shape[0]} vs {spec.feat_dim}"
        raise VisionZooError(
            f"{source}: this {card.model} was trained on features of another kind than these (trained vs asked: "
            f"{why}); extract them as it was trained"
        )
    kind = hashlib.sha256(json.dumps({k: wanted[k] for k in sorted(wanted) if k != "weights"}).encode()).hexdigest()
    folder = FeatureFolder(cache_dir("video-features", kind[:16]), spec)
    report = extract_features([(_video_key(path), path) for _, path in videos], folder, featurizer)
    if report.already_done:
        logger.info("%d of %d videos' features found in the cache %s", len(report.already_done), len(videos),
                    folder.root)  # fmt: skip
    return folder


@dataclass(frozen=True)
class Labeller:
    """A video classifier trained on the BMN's kind of features, and how its classes meet the proposals."""

    card: ModelCard
    runtime: Runtime
    source: Path
    top_k: int = 2
    fusion: str = "product"


@dataclass(frozen=True)
class VideoResult:
    name: str
    path: Path
    seconds: float  # the whole video
    proposals: list[dict[str, Any]]
    detections: list[dict[str, Any]] | None  # None: no classifier was given


def check_labeller(card: ModelCard, labeller: Labeller) -> None:
    """Refuse, in one line, a --classes checkpoint that is no video classifier or saw other features than the BMN."""
    from visionzoo.data.feature_folder import kind_differences

    found = labeller.card
    if found.task != "video_classification":
        raise VisionZooError(f"--classes {labeller.source}: a {found.task} checkpoint ({found.model}), not a video "
                             "classifier (recipes anet_video_classifier, thumos14_video_classifier)")  # fmt: skip
    mine, theirs = card.preprocessing.get("features"), found.preprocessing.get("features")
    if not mine or not theirs:
        raise VisionZooError(f"--classes {labeller.source}: the classifier's or the BMN's run records no "
                             "features.json; train both on a folder written by visionzoo features")  # fmt: skip
    differences = kind_differences(mine, theirs)
    if differences:
        raise VisionZooError(f"--classes {labeller.source}: trained on other features than the BMN (BMN vs "
                             f"classifier: {'; '.join(differences)})")  # fmt: skip


def _readable(
    card: ModelCard, settings: ExtractionSettings, videos: list[tuple[str, Path]], source: Path
) -> tuple[list[tuple[str, Path, dict[str, Any]]], list[Path]]:
    """(name, file, feature record) of each readable video and its feature CSV; unreadable ones were named."""
    folder = video_features(card, settings, videos, source)
    found = [(name, path, folder.record(_video_key(path))) for name, path in videos]
    found = [(name, path, record) for name, path, record in found if record is not None]
    if not found:
        raise VisionZooError("predict: none of the videos could be read (see the warnings above)")
    return found, [folder.csv_dir / f"{record['video']}.csv" for *_, record in found]


def video_classes(
    card: ModelCard, runtime: Runtime, settings: ExtractionSettings, videos: list[tuple[str, Path]], source: Path
) -> dict[str, list[dict[str, Any]]]:
    """A video classifier's classes of each readable video (`export.predict.predict_video_classes`)."""
    from visionzoo.export.predict import predict_video_classes
    from visionzoo.tasks.postprocess import video_id

    found, csv_files = _readable(card, settings, videos, source)
    by_key = predict_video_classes(card, runtime, csv_files, settings.batch_size)
    return {video_id(name): by_key[video_id(record["video"])] for name, _, record in found}


def predict_videos(
    card: ModelCard,
    runtime: Runtime,
    settings: ExtractionSettings,
    videos: list[tuple[str, Path]],
    source: Path,
    labeller: Labeller | None = None,
) -> list[VideoResult]:
    """Proposals (seconds) of every readable video, and with a `labeller` its detections: the top-k classes x
    the proposals (`tasks.detection.fuse`), seconds rounded to milliseconds as the ActivityNet format writes them."""
    from visionzoo.export.predict import predict_proposals, predict_video_classes
    from visionzoo.tasks.detection import classes_of, fuse
    from visionzoo.tasks.postprocess import video_id

    if labeller is not None:
        check_labeller(card, labeller)
    found, csv_files = _readable(card, settings, videos, source)
    durations = [min(r["featureFrame"], r["numFrame"]) / r["numFrame"] * r["seconds"] for *_, r in found]
    by_key = predict_proposals(card, runtime, csv_files, durations, settings.batch_size)
    detected: dict[str, list[dict[str, Any]]] = {}
    if labeller is not None:
        classes = classes_of(predict_video_classes(labeller.card, labeller.runtime, csv_files, settings.batch_size),
                             str(labeller.source))  # fmt: skip
        detected = fuse(by_key, classes, labeller.top_k, labeller.fusion)
        for found_here in detected.values():
            for d in found_here:
                d["segment"] = [round(t, 3) for t in d["segment"]]
    return [
        VideoResult(
            name,
            path,
            float(record["seconds"]),
            by_key[video_id(record["video"])],
            detected.get(video_id(record["video"]), []) if labeller else None,
        )  # fmt: skip
        for name, path, record in found
    ]


def _earlier(path: Path, what: str) -> dict[str, list[dict[str, Any]]]:
    """The results an earlier run left in the folder, validated, as the dicts this run writes."""
    from visionzoo.tasks.postprocess import Detection, Proposal, read_results

    if not path.is_file():
        return {}
    found = read_results(path, what, Detection if what == "detections" else Proposal)
    return {video: [item.model_dump() for item in items] for video, items in found.items()}


class _KnownVideo(OpenSchema):
    """videos.json: what the viewer needs of each video an earlier run predicted."""

    name: str
    path: str
    seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    thumbnails: list[str] = []


class _KnownVideos(RootModel[dict[str, _KnownVideo]]):
    pass


def write_results_folder(
    output: Path, results: list[VideoResult], show: int = SHOWN, ground_truth: Path | None = None
) -> list[str]:
    """Write each video's SRT and timeline, and merge the run into the folder's proposals.json, detections.json,
    videos.json and index.html (earlier videos kept, those predicted again replaced); the lines to print."""
    from visionzoo.export.subtitles import write_srt
    from visionzoo.files import read_json, write_json
    from visionzoo.tasks.postprocess import video_id, write_results

    truth = _ground_truth(ground_truth, [r.name for r in results])
    proposals, detections = _earlier(output / PROPOSALS, "proposals"), _earlier(output / DETECTIONS, "detections")
    known: dict[str, Any] = {}
    if (output / VIDEOS).is_file():
        found = read_json(output / VIDEOS, "videos file", _KnownVideos).root
        known = {key: entry.model_dump() for key, entry in found.items()}
    again = sorted(r.name for r in results if video_id(r.name) in proposals)
    kept = len(set(proposals) - {video_id(r.name) for r in results})
    for r in results:
        key = video_id(r.name)
        proposals[key] = r.proposals
        detections.pop(key, None)
        if r.detections is not None:
            detections[key] = r.detections
        images = _thumbnails(r.path, r.seconds)  # decoded once: the timeline's strip and the page's
        known[key] = {"name": r.name, "path": str(r.path.resolve()), "seconds": r.seconds,
                      "ground_truth": truth.get(r.name), "thumbnails": _strip_uris(images)}  # fmt: skip
        shown = (r.detections if r.detections is not None else r.proposals)[:show]
        write_srt(output / f"{r.name}.srt", shown)
        plot_timeline(output / f"{r.name}.png", r.name, images, r.seconds, shown, truth.get(r.name))
    lines = []
    if kept or again:
        lines.append(f"{output}: kept {kept} earlier videos' results; {len(again)} predicted again and replaced"
                     + (f" ({', '.join(again)})" if again else ""))  # fmt: skip
    lines.append(str(write_results(output / PROPOSALS, proposals)))
    if detections:
        lines.append(str(write_results(output / DETECTIONS, detections)))
    write_json(output / VIDEOS, known)
    lines.append(str(write_page(output, known, proposals, detections, show)))
    return lines


def write_page(output: Path, known: dict[str, Any], proposals: dict[str, Any], detections: dict[str, Any],
               show: int) -> Path:  # fmt: skip
    """index.html over every video of the folder's results (thumbnails for browsers that cannot play a codec)."""
    from visionzoo.export.viewer import ViewerVideo, write_viewer

    videos = []
    for key in sorted(known):
        entry = known[key]
        path, seconds = Path(entry["path"]), float(entry["seconds"])
        videos.append(ViewerVideo(entry["name"], path, seconds, detections.get(key, ()), proposals.get(key, ()),
                                  entry.get("ground_truth"), entry.get("thumbnails", [])))  # fmt: skip
    return write_viewer(output / VIEWER, videos, top_k=show)


def _thumbnails(path: Path, seconds: float) -> list[np.ndarray]:
    """`THUMBNAILS` frames 90 px high at the centres of equal slots of the video; none when it is unreadable now."""
    from visionzoo.data.video import thumbnails

    try:
        return thumbnails(path, [(i + 0.5) / THUMBNAILS * seconds for i in range(THUMBNAILS)], height=90)
    except (OSError, VisionZooError):
        return []


def _strip_uris(images: list[np.ndarray], height: int = 72) -> list[str]:
    """The page's thumbnail strip: the frames scaled to `height`, as JPEG data URIs (kept in videos.json, so a
    later run into the folder does not decode the earlier videos again)."""
    from PIL import Image

    from visionzoo.export.viewer import thumbnail_uri

    strip = []
    for image in images:
        width = max(2, round(image.shape[1] * height / image.shape[0]))
        strip.append(thumbnail_uri(np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))))
    return strip


def _ground_truth(path: Path | None, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """{video name: [{"segment": [start, end] seconds, "label"}]} of the annotations that name these videos (file
    names, stems, v_ ids)."""
    if path is None:
        return {}
    from visionzoo.data.own_annotations import match_video, raise_row_errors, read_actions

    actions, errors = read_actions(path)
    raise_row_errors(path, errors)
    segments: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        name = match_video(action.video, set(names))
        if name is not None:
            segments.setdefault(name, []).append({"segment": [action.start, action.end], "label": action.label})
    if not segments:
        logger.warning("%s: names none of these videos; timelines without ground truth", path)
    return segments


def plot_timeline(
    path: Path,
    name: str,
    images: list[np.ndarray],
    duration: float,
    segments: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]] | None,
) -> Path:
    """One PNG: thumbnails along the time axis, the top segments as bars shaded by score with their label (or
    rank) and score, the ground truth with its labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thumbnails = THUMBNAILS
    times = ((np.arange(thumbnails) + 0.5) / thumbnails * duration).tolist()
    rows = len(segments) + (1 if ground_truth is not None else 0)
    aspect = images[0].shape[0] / images[0].shape[1] if images else 0.75
    strip_inches, bars_inches = 11.0 / thumbnails * aspect, 0.6 + 0.3 * max(rows, 1)  # thumbnails undistorted
    figure, (strip, bars) = plt.subplots(
        2, 1, figsize=(12, strip_inches + bars_inches + 1.0), sharex=True,
        gridspec_kw={"height_ratios": [strip_inches, bars_inches]},
    )  # fmt: skip
    step = duration / thumbnails
    for image, time in zip(images, times, strict=False):  # each in its slot of the time axis
        strip.imshow(image, extent=(time - step / 2, time + step / 2, 0, 1), aspect="auto")
    what = "detections" if any("label" in s for s in segments) else "proposals"
    title = f"{name}: {duration:.1f} s, top {len(segments)} {what} (blue, darker = higher score)"
    strip.set(ylim=(0, 1), yticks=[], title=title)
    colours = plt.get_cmap("Blues")
    best = max((s["score"] for s in segments), default=1.0) or 1.0
    labels = []
    for row, s in enumerate(segments):
        start, end = s["segment"]
        bars.barh(row, end - start, left=start, height=0.7, color=colours(0.3 + 0.7 * s["score"] / best))
        bars.text(end, row, f" {s.get('label', '')} {s['score']:.2f}".replace("  ", " "), va="center", fontsize=8)
        labels.append(f"#{row + 1}")
    if ground_truth is not None:
        for truth in ground_truth:
            start, end = truth["segment"]
            bars.barh(len(segments), end - start, left=start, height=0.7, color="tab:green")
            bars.text(start, len(segments), f" {truth['label']}", va="center", fontsize=8, color="white")
        labels.append("truth")
    bars.set(yticks=range(len(labels)), yticklabels=labels, xlim=(0, duration), xlabel="seconds")
    bars.invert_yaxis()
    bars.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)
    return path
