"""`--classes auto`: the built-in video classifier of a BMN recipe's data, trained once and then reused.

The classifier recipe (`anet_video_classifier` or `thumos14_video_classifier`) takes the BMN recipe's data and
feature settings, trains into a cache folder named by a fingerprint of those settings and of the data's files
(resumable like any run: an interrupted training continues there), and its evaluation writes the classes of
the evaluated videos (`classification.json`), which the BMN evaluation pairs with its proposals. A later run
on the same data finds that file and trains nothing. It knows a task and its data, so it sits with the command
that asks for it, not in the task-agnostic engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from visionzoo.data.builtin import resolve_data
from visionzoo.data.cache import cache_dir
from visionzoo.errors import VisionZooError
from visionzoo.recipes import get_recipe
from visionzoo.recipes.base import ProposalRecipe, VideoClassifierRecipe

logger = logging.getLogger(__name__)

CLASSIFIER_OF = {"activitynet": "anet_video_classifier", "thumos14": "thumos14_video_classifier"}
CLASSES_FILE = "classification.json"


def classifier_recipe(recipe: ProposalRecipe) -> VideoClassifierRecipe:
    """The classifier recipe for `recipe`'s data: same data, features, subsets, device and seed."""
    if recipe.data_format not in CLASSIFIER_OF:
        raise VisionZooError(f"--classes auto: no built-in classifier for {recipe.data_format} data")
    shared = (
        "data",
        "data_format",
        "feat_dim",
        "video_info",
        "video_anno",
        "feature_dir",
        "device",
        "workers",
        "seed",
        "batch_size",
    )  # fmt: skip  (the run's batch: small data that fits its -b fits the classifier's)
    changes = {name: getattr(recipe, name) for name in shared}
    if recipe.data_format == "activitynet":  # ProposalTask's subsets, features rescaled to its T
        changes |= {"temporal_scale": recipe.temporal_scale, "train_subset": "train", "eval_subset": "validation"}
    else:
        changes |= {name: getattr(recipe, name) for name in ("snippet_frames", "train_subset", "eval_subset")}
    return get_recipe(CLASSIFIER_OF[recipe.data_format]).replace(**changes)


def _fingerprint(classifier: VideoClassifierRecipe) -> str:
    """Hash of the classifier's settings and of the data files it learns from (sizes and times)."""
    shape = {"temporal_scale": classifier.temporal_scale, "feat_dim": classifier.feat_dim}
    root = resolve_data(classifier.data, classifier.data_format, **shape)
    sources = [root / classifier.video_info, root / classifier.video_anno, root / classifier.feature_dir]
    files = [p for source in sources for p in ([source] if source.is_file() else sorted(source.glob("*")))]
    stats = [(str(p.resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files if p.is_file()]
    settings = {k: v for k, v in classifier.to_dict().items() if k not in ("device", "amp", "workers")}
    return hashlib.sha256(json.dumps([settings, stats], default=str).encode()).hexdigest()[:24]


def classes_file(recipe: ProposalRecipe) -> Path:
    """The classification JSON of the built-in classifier for `recipe`'s evaluated videos (trained if needed)."""
    from visionzoo.engine.evaluate import evaluate_checkpoint
    from visionzoo.engine.trainer import RunOptions, train

    classifier = classifier_recipe(recipe)
    run_dir = cache_dir("video-classifier", _fingerprint(classifier))
    found = run_dir / CLASSES_FILE
    if found.is_file():
        logger.info("--classes auto: the classes of %s (built-in classifier, trained before)", found)
        return found
    logger.info("--classes auto: training %s on %s into %s", classifier.name, classifier.data, run_dir)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its closing block is not this command's output
            summary = train(classifier, RunOptions(output=run_dir, resume="auto"))
    except BaseException:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # a training that failed before writing anything leaves no empty cache folder
        raise
    if summary.get("interrupted"):
        raise VisionZooError(f"--classes auto: the classifier's training in {run_dir} stopped; run again to resume")
    metrics = evaluate_checkpoint(classifier, run_dir / "best.safetensors", run_dir)
    scores = ", ".join(f"{key} {metrics[key]:.2f}" for key in ("top1", "top5", "mAP"))
    logger.info("--classes auto: %s on the evaluated videos: %s", classifier.name, scores)
    return found
