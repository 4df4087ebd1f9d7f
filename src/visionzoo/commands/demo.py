"""`visionzoo demo` (the seeds' demo.py): one video through BMN, every candidate and the kept proposals.

Writes, into output/demo/ as the seed does: demo.csv (all candidates, the reference's columns),
demo_proposals.json (after Soft-NMS, ActivityNet format) and demo.png (boundary curves, the confidence
map and the top proposals against the ground truth).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from visionzoo.errors import VisionZooError
from visionzoo.files import save_figure, write_csv
from visionzoo.models.weights import load_checkpoint
from visionzoo.recipes import get_recipe
from visionzoo.recipes.overrides import check_inputs
from visionzoo.tasks import postprocess
from visionzoo.tasks.proposals import ProposalTask

CSV_COLUMNS = ("xmin", "xmax", "xmin_score", "xmax_score", "clr_score", "reg_score", "score")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="BMN on one video: candidates CSV, proposals JSON and a plot in output/demo/"
    )
    p.add_argument("--recipe", default="bmn_anet")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", default="demo", help="dataset directory in the BSN layout, or 'demo'")
    p.add_argument("--video", help="video name (default: the first validation video)")
    p.add_argument("--output", type=Path, default=Path("output/demo"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for path in run_demo(args.recipe, args.checkpoint, args.data, args.video, args.output):
        print(path)
    return 0


def run_demo(recipe_name: str, checkpoint: Path, data: str, video: str | None, output: Path) -> list[Path]:
    recipe = get_recipe(recipe_name).replace(data=data)
    check_inputs(recipe)
    task = ProposalTask(recipe)
    model = task.build_model()
    load_checkpoint(model, checkpoint)
    model.eval()
    _, val_set = task.build_datasets()
    names = [v.name for v in val_set.videos]
    wanted = video if video is None or video in names else f"v_{video}"
    if wanted is not None and wanted not in names:
        raise VisionZooError(f"--video {video}: not among the {len(names)} validation videos of {data}")
    index = names.index(wanted) if wanted is not None else 0
    record = val_set.videos[index]
    features, _, _ = val_set[(index, 0)]
    with torch.no_grad():
        conf_map, start, end = model(features[None])

    T = recipe.temporal_scale
    start_index, end_cell = postprocess.candidate_cells(T)
    segments = postprocess.candidate_segments(T)
    xmin_score, xmax_score = start[0, start_index], end[0, end_cell + 1]
    reg, cls = conf_map[0, 0, start_index, end_cell], conf_map[0, 1, start_index, end_cell]
    scores = postprocess.score_candidates(start, end, conf_map)
    duration = postprocess.reference_duration(record.duration_second, record.duration_frame, record.snippet_frames)
    (proposals,) = postprocess.post_process(scores, [duration], T, task.settings)

    output.mkdir(parents=True, exist_ok=True)
    csv_path = output / "demo.csv"
    columns = np.column_stack([segments, *(t.numpy() for t in (xmin_score, xmax_score, cls, reg, scores[0]))])
    write_csv(csv_path, CSV_COLUMNS, columns.tolist())
    json_path = postprocess.write_proposals(
        output / "demo_proposals.json", {postprocess.video_id(record.name): proposals}
    )
    png_path = _plot(output / "demo.png", record, start[0], end[0], conf_map[0], proposals, duration)
    return [csv_path, json_path, png_path]


def _plot(path: Path, record, start, end, conf_map, proposals, duration: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = start.shape[0]
    seconds = np.arange(T) / T * record.feature_second
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    axes[0].plot(seconds, start.numpy(), label="start")
    axes[0].plot(seconds, end.numpy(), label="end")
    for gt_start, gt_end in record.segments:
        axes[0].axvspan(gt_start, gt_end, color="green", alpha=0.15)
    axes[0].set(title=f"{record.name}: boundary probabilities (GT shaded)", xlabel="seconds")
    axes[0].legend()
    confidence = (conf_map[0] * conf_map[1]).numpy()
    confidence[np.tril_indices(T, -1)] = np.nan  # [start, end] map: only start <= end is a proposal
    image = axes[1].imshow(confidence, origin="lower", cmap="viridis")
    axes[1].set(title="confidence (reg x cls) map", xlabel="end index", ylabel="start index")
    figure.colorbar(image, ax=axes[1])
    top = proposals[:10]
    for row, proposal in enumerate(top):
        axes[2].barh(
            row,
            proposal["segment"][1] - proposal["segment"][0],
            left=proposal["segment"][0],
            color="tab:blue",
            alpha=0.3 + 0.7 * proposal["score"] / max(top[0]["score"], 1e-9),
        )
    for gt_start, gt_end in record.segments:
        axes[2].barh(len(top), gt_end - gt_start, left=gt_start, color="green")
    axes[2].set(
        title="top 10 proposals (blue) and ground truth (green)", xlabel="seconds", xlim=(0, duration), yticks=[]
    )
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)
    return path
