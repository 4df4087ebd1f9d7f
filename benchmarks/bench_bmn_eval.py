"""Time BMN evaluation over a validation-size set (4,728 videos): inference, candidates, Soft-NMS, AR@AN.

Inference runs our model (random weights, synthetic features) on `--infer-videos` videos and is extrapolated
to the full set unless `--infer-videos 4728`: on a 2-core CPU the full pass alone takes about an hour. The
post-processing and evaluation stages run on all videos, from synthetic start/end/confidence outputs, against
the real validation ground truth when /work/shared/data/activitynet is there (synthetic instances otherwise).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import markdown_table, write_section  # benchmarks/ is on sys.path when run as a script

import visionzoo.models.bmn  # noqa: F401  (registers "bmn")
from visionzoo.engine.flops import count_flops
from visionzoo.engine.hardware import peak_flops
from visionzoo.engine.precision import resolve_amp
from visionzoo.models import create_model
from visionzoo.tasks import anet_metrics, postprocess

VIDEOS = 4728
T = 100
SHARED_ACTIVITYNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "activitynet"


def ground_truth(videos: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[float], str]:
    if SHARED_ACTIVITYNET.is_dir():
        truth = anet_metrics.load_ground_truth(SHARED_ACTIVITYNET)
        names = list(truth.segments)[:videos]
        return {n: truth.segments[n] for n in names}, [truth.durations[n] for n in names], "real validation GT"
    durations = rng.uniform(10, 240, videos).tolist()
    truth = {}
    for v, duration in enumerate(durations):
        start = rng.uniform(0, 0.7, 2) * duration
        truth[f"video{v}"] = np.stack([start, start + rng.uniform(0.05, 0.3, 2) * duration], axis=1)
    return truth, durations, "synthetic GT"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--infer-videos", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=256, help="videos post-processed at once")
    parser.add_argument("--amp", choices=("auto", "off", "bf16"), default="auto",
                        help="inference precision (off: fp32; auto: what `visionzoo eval` resolves here)")  # fmt: skip
    args = parser.parse_args()
    args.amp = resolve_amp(args.amp, torch.device("cpu")).resolved
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seconds: dict[str, float] = {}

    model = create_model("bmn").eval()
    features = torch.randn(args.batch_size, 400, T)
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        flops_per_video = count_flops(lambda: model(features[:1]))
    floor = flops_per_video * VIDEOS / peak_flops(dtype, torch.device("cpu"))["peak"]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        model(features)  # warm-up at the timed batch size (its first call allocates and builds kernels)
        begin = time.perf_counter()
        for _ in range(0, args.infer_videos, args.batch_size):
            model(features)
        infer = time.perf_counter() - begin
    inferred = -(-args.infer_videos // args.batch_size) * args.batch_size
    seconds["inference"] = infer * VIDEOS / inferred

    truth, durations, truth_kind = ground_truth(VIDEOS, rng)
    names = list(truth)
    begin = time.perf_counter()
    postprocess.grid_decay_factors(T, 0.4, 0.5, 0.9)
    seconds["Soft-NMS table (once)"] = time.perf_counter() - begin
    seconds["score_candidates"] = seconds["Soft-NMS + top 100 + seconds"] = 0.0
    found = {}
    for first in range(0, VIDEOS, args.chunk):
        count = min(args.chunk, VIDEOS - first)
        conf_map, start, end = torch.rand(count, 2, T, T), torch.rand(count, T), torch.rand(count, T)
        begin = time.perf_counter()
        scores = postprocess.score_candidates(start, end, conf_map)
        seconds["score_candidates"] += time.perf_counter() - begin
        begin = time.perf_counter()
        results = postprocess.post_process(scores, durations[first : first + count], T)
        seconds["Soft-NMS + top 100 + seconds"] += time.perf_counter() - begin
        for name, proposals in zip(names[first : first + count], results, strict=True):
            found[name] = np.array([[*p["segment"], p["score"]] for p in proposals])
    begin = time.perf_counter()
    metrics = anet_metrics.evaluate_proposals(truth, found)
    seconds["AR@AN evaluation"] = time.perf_counter() - begin

    total = sum(seconds.values())
    rows = [
        {
            "stage": stage,
            "seconds": f"{value:.1f}",
            "ms / video": f"{1000 * value / VIDEOS:.2f}",
            "measured on": f"{inferred} videos, extrapolated" if stage == "inference" else f"{VIDEOS} videos",
        }
        for stage, value in seconds.items()
    ]
    rows.append({"stage": "total", "seconds": f"{total:.1f}", "ms / video": f"{1000 * total / VIDEOS:.2f}",
                 "measured on": ""})  # fmt: skip
    post = total - seconds["inference"]
    body = (
        f"BMN evaluation of {VIDEOS} videos (T={T}, batch {args.batch_size}, inference amp {args.amp}, random "
        f"weights, synthetic features and outputs, {truth_kind}; {torch.get_num_threads()} torch threads). "
        f"Goal: under 2 minutes in total on a 2-core CPU.\n\n{markdown_table(rows)}\n\n"
        f"Inference: {seconds['inference']:.1f} s against a floor of {floor:.1f} s ({flops_per_video / 1e9:.1f} "
        f"GFLOP per video x {VIDEOS} over this machine's measured {args.amp} peak), i.e. "
        f"{100 * floor / seconds['inference']:.0f} % of the peak. "
        f"Post-processing + evaluation: {post:.1f} s; with inference: {total:.1f} s "
        f"({'meets' if total < 120 else 'misses'} the 2-minute goal"
        f"{'' if total < 120 else f' by {total - 120:.0f} s, almost all of it inference'}). "
        f"AR@100 of the random outputs: {metrics['AR@100']:.2f} (a check that the pipeline ran, not a result)."
    )
    print(body)
    write_section("bench_bmn_eval", body)


if __name__ == "__main__":
    main()
