"""BMN on raw videos: features (cached) -> BMN -> Soft-NMS -> proposals in seconds, an SRT and a timeline per video.

The features are made as the checkpoint's training features were (its model card records their features.json;
another kind of features is refused in one line), into a feature folder in the cache keyed by that kind, so a
video whose features are there is not decoded again. The proposals are in seconds of the real video: the span
the snippets cover, min(featureFrame, numFrame) / numFrame * seconds (with 16-frame snippets, the reference's
(numFrame // 16 * 16) / numFrame * seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionzoo.errors import VisionZooError
from visionzoo.files import save_figure

if TYPE_CHECKING:  # the CLI imports this module to build its parser: heavy imports wait until used
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.export.feature_extractor import ExtractionSettings
    from visionzoo.export.model_card import ModelCard
    from visionzoo.export.runtime import Runtime

logger = logging.getLogger(__name__)

SHOWN = 10  # proposals per video in the SRT and the timeline


def trained_features(card: ModelCard) -> dict[str, Any]:
    """The extraction settings of the checkpoint's training features (its features.json), as defaults for the
    extraction of new videos; the BMN's own T."""
    trained = card.preprocessing.get("features") or {}
    keys = ("backbone", "layer", "img_size", "snippet_frames", "init_seed", "amp")
    return {key: trained.get(key) for key in keys} | {"temporal_scale": card.input_shape[1]}


def check_settings(card: ModelCard, settings: ExtractionSettings) -> None:
    if settings.temporal_scale != card.input_shape[1]:
        raise VisionZooError(f"--temporal-scale {settings.temporal_scale}: this BMN takes T={card.input_shape[1]}")


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
            f"{source}: this BMN was trained on features of another kind than these (trained vs asked: {why}); "
            "extract them as it was trained"
        )
    kind = hashlib.sha256(json.dumps({k: wanted[k] for k in sorted(wanted) if k != "weights"}).encode()).hexdigest()
    folder = FeatureFolder(cache_dir("video-features", kind[:16]), spec)
    report = extract_features([(_video_key(path), path) for _, path in videos], folder, featurizer)
    if report.already_done:
        logger.info("%d of %d videos' features found in the cache %s", len(report.already_done), len(videos),
                    folder.root)  # fmt: skip
    return folder


def predict_videos(
    card: ModelCard,
    runtime: Runtime,
    settings: ExtractionSettings,
    videos: list[tuple[str, Path]],
    source: Path,
    output: Path,
    show: int = SHOWN,
    ground_truth: Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Proposals (seconds) of every readable video, written with an SRT and a timeline PNG per video."""
    from visionzoo.export.predict import predict_proposals
    from visionzoo.tasks.postprocess import video_id

    folder = video_features(card, settings, videos, source)
    found = [(name, path, folder.record(_video_key(path))) for name, path in videos]
    found = [(name, path, record) for name, path, record in found if record is not None]  # unreadable ones: named
    if not found:
        raise VisionZooError("predict: none of the videos could be read (see the warnings above)")
    csv_files = [folder.csv_dir / f"{record['video']}.csv" for *_, record in found]
    durations = [min(r["featureFrame"], r["numFrame"]) / r["numFrame"] * r["seconds"] for *_, r in found]
    by_key = predict_proposals(card, runtime, csv_files, durations, settings.batch_size)
    truth = _ground_truth(ground_truth, [name for name, _, _ in found])
    results: dict[str, list[dict[str, Any]]] = {}
    for name, path, record in found:
        kept = results[video_id(name)] = by_key[video_id(record["video"])]
        write_srt(output / f"{name}.srt", kept[:show])
        plot_timeline(output / f"{name}.png", name, path, record["seconds"], kept[:show], truth.get(name))
    return results


def _ground_truth(path: Path | None, names: list[str]) -> dict[str, np.ndarray]:
    """{video name: [K, 2] seconds} of the annotations that name these videos (file names, stems, v_ ids)."""
    if path is None:
        return {}
    from visionzoo.data.own_annotations import ground_truth_segments, match_video

    segments = {}
    for video, rows in ground_truth_segments(path).items():
        name = match_video(video, set(names))
        if name is not None:
            segments[name] = rows
    if not segments:
        logger.warning("%s: names none of these videos; timelines without ground truth", path)
    return segments


def srt_time(seconds: float) -> str:
    milliseconds = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def write_srt(path: Path, proposals: list[dict[str, Any]]) -> Path:
    """Subtitles any player shows over the video: each proposal while it lasts, with its rank and score.

    Cues are in time order, as players expect; overlapping proposals show together.
    """
    from visionzoo.files import write_text

    ranked = sorted(enumerate(proposals, start=1), key=lambda item: (item[1]["segment"][0], item[0]))
    cues = [
        f"{number}\n{srt_time(p['segment'][0])} --> {srt_time(p['segment'][1])}\n"
        f"proposal #{rank} (score {p['score']:.3f})\n"
        for number, (rank, p) in enumerate(ranked, start=1)
    ]
    write_text(path, "\n".join(cues))
    return path


def plot_timeline(
    path: Path,
    name: str,
    video: Path,
    duration: float,
    proposals: list[dict[str, Any]],
    ground_truth: np.ndarray | None,
    thumbnails: int = 8,
) -> Path:
    """One PNG: thumbnails along the time axis, the top proposals as bars shaded by score, the ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visionzoo.data.video import thumbnails as grab

    times = ((np.arange(thumbnails) + 0.5) / thumbnails * duration).tolist()
    images = grab(video, times, height=90)
    rows = len(proposals) + (1 if ground_truth is not None else 0)
    aspect = images[0].shape[0] / images[0].shape[1] if images else 0.75
    strip_inches, bars_inches = 11.0 / thumbnails * aspect, 0.6 + 0.3 * max(rows, 1)  # thumbnails undistorted
    figure, (strip, bars) = plt.subplots(
        2, 1, figsize=(12, strip_inches + bars_inches + 1.0), sharex=True,
        gridspec_kw={"height_ratios": [strip_inches, bars_inches]},
    )  # fmt: skip
    step = duration / thumbnails
    for image, time in zip(images, times, strict=False):  # each in its slot of the time axis
        strip.imshow(image, extent=(time - step / 2, time + step / 2, 0, 1), aspect="auto")
    title = f"{name}: {duration:.1f} s, top {len(proposals)} proposals (blue, darker = higher score)"
    strip.set(ylim=(0, 1), yticks=[], title=title)
    colours = plt.get_cmap("Blues")
    best = max((p["score"] for p in proposals), default=1.0) or 1.0
    labels = []
    for row, p in enumerate(proposals):
        start, end = p["segment"]
        bars.barh(row, end - start, left=start, height=0.7, color=colours(0.3 + 0.7 * p["score"] / best))
        bars.text(end, row, f" {p['score']:.2f}", va="center", fontsize=8)
        labels.append(f"#{row + 1}")
    if ground_truth is not None:
        for start, end in ground_truth:
            bars.barh(len(proposals), end - start, left=start, height=0.7, color="tab:green")
        labels.append("truth")
    bars.set(yticks=range(len(labels)), yticklabels=labels, xlim=(0, duration), xlabel="seconds")
    bars.invert_yaxis()
    bars.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)
    return path
