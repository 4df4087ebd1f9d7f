"""BMN training and inference speed, MFU and peak memory: the reference, the code before issue 10, ours now.

Batch 16, T=100, feat_dim 400, on this CPU, fp32 and bf16 autocast; train = the task's real step (targets, BMN
loss, backward, Adam). Three implementations side by side in one run:
- `reference`: the literal transcription of JJBOY's BMN (benchmarks/bmn_reference.py), dense BM layer;
- `before`: this repository at `--baseline` (default: the commit issue 10 started from), run from a temporary
  git worktree, so the comparison is on the same machine in the same run;
- `ours`: the working tree.
Each configuration runs in its own subprocess, so `ru_maxrss` (peak resident memory) is its own. FLOPs are the
matmuls and convolutions the step runs (sparse products priced by their stored values, engine/flops.py);
MFU = FLOPs x samples/s over this machine's measured peak for the dtype (engine/hardware.peak_flops).
Goal (issue 10): ours >= 2x `before` in fp32 training.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BATCH, T_SCALE, FEAT_DIM = 16, 100, 400
BASELINE = "9ea6a1b"  # main when issue 10 was taken up
STEPS = {"reference": (1, 1), "before": (1, 3), "ours": (1, 3)}  # (warm-up, timed)


def _current_flops_module():
    """engine/flops.py of the working tree, loaded by path: the `before` process imports the old package."""
    spec = importlib.util.spec_from_file_location("current_flops", ROOT / "src/visionzoo/engine/flops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_config(impl: str, precision: str, mode: str) -> dict[str, float]:
    """One configuration, in this process: seconds per step, samples/s, FLOPs per sample, memory."""
    warnings.filterwarnings("ignore")
    from visionzoo.recipes import get_recipe
    from visionzoo.tasks import make_task

    torch.manual_seed(0)
    task = make_task(get_recipe("bmn_anet").replace(amp="off"))
    if impl == "reference":
        sys.path.insert(0, str(ROOT))
        from benchmarks.bmn_reference import ReferenceBMN

        model = ReferenceBMN(temporal_scale=T_SCALE, feat_dim=FEAT_DIM)
    else:
        model = task.build_model()
    batch = task.example_batch(BATCH)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def forward_backward() -> None:
        with autocast:
            loss, _ = task.train_step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def step() -> None:
        if mode == "train":
            forward_backward()
            optimizer.step()
        else:
            with torch.no_grad(), autocast:
                model(batch[0])

    counted = forward_backward if mode == "train" else step
    counted()  # once uncounted: first-call allocations and kernel selection are no step's work
    flops = _current_flops_module().count_flops(counted)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    warmup, timed = STEPS[impl]
    for _ in range(warmup):
        step()
    start_time = time.perf_counter()
    for _ in range(timed):
        step()
    seconds = (time.perf_counter() - start_time) / timed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_step": seconds, "samples_per_s": BATCH / seconds, "gflops": flops / BATCH / 1e9, "peak_mb": peak,
            "growth_mb": peak - base_rss}  # fmt: skip


def run_subprocess(impl: str, precision: str, mode: str, source: Path) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(source / "src")}
    cmd = [sys.executable, __file__, "--config", f"{impl},{precision},{mode}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="impl,precision,mode: run one configuration and print JSON (internal)")
    parser.add_argument("--baseline", default=BASELINE, help="the commit `before` runs")
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_config(*args.config.split(","))))
        return

    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT))
    from benchmarks.report import markdown_table, write_section
    from visionzoo.engine.hardware import peak_flops

    peaks = {
        p: peak_flops(dt, torch.device("cpu"))["peak"] for p, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            for mode in ("train", "infer"):
                for precision in args.precisions.split(","):
                    for impl, source in (("reference", ROOT), ("before", before), ("ours", ROOT)):
                        result = run_subprocess(impl, precision, mode, source)
                        results[impl, precision, mode] = result
                        print(impl, precision, mode, result, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    for mode in ("train", "infer"):
        for precision in args.precisions.split(","):
            base = results["before", precision, mode]
            for impl in ("reference", "before", "ours"):
                r = results[impl, precision, mode]
                speedup = r["samples_per_s"] / base["samples_per_s"]
                goal = " (goal 2x)" if impl == "ours" and mode == "train" and precision == "fp32" else ""
                rows.append(
                    {
                        "mode": mode,
                        "precision": precision,
                        "code": impl,
                        "samples/s": f"{r['samples_per_s']:.2f}",
                        "vs before": f"{speedup:.2f}x{goal}",
                        "GFLOP/sample": f"{r['gflops']:.1f}",
                        "MFU": f"{100 * r['gflops'] * 1e9 * r['samples_per_s'] / peaks[precision]:.1f} %",
                        "peak RSS MB": f"{r['peak_mb']:.0f}",
                        "RSS growth MB": f"{r['growth_mb']:.0f}",
                    }
                )
    steps = ", ".join(f"{k}: {w} warm-up + {t} timed steps" for k, (w, t) in STEPS.items())
    body = (
        f"Batch {BATCH}, T={T_SCALE}, feat_dim {FEAT_DIM}, {torch.get_num_threads()} threads; train = targets + "
        f"BMN loss + backward + Adam step, infer = forward under no_grad; bf16 = CPU autocast. `before` = commit "
        f"{args.baseline}. {steps}. Peaks measured here: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
        f"{peaks['bf16'] / 1e9:.0f} GFLOP/s. GFLOP/sample counts what each implementation runs (the reference's "
        "dense BM layer and full 2-D head included), so MFU compares how well each uses the machine, and "
        "samples/s how fast each trains.\n\n" + markdown_table(rows)
    )
    write_section("bench_bmn_train", body)


if __name__ == "__main__":
    main()
