"""BMN training and inference speed, and peak memory: the reference's dense BM layer vs our default (sparse).

Batch 16, T=100, feat_dim 400, on this CPU, fp32 and bf16 autocast. Each configuration runs in its own
subprocess so that `ru_maxrss` (peak resident memory) belongs to it alone; we report the peak and its growth
over the RSS measured once the model, optimizer and batch exist. Goals (issue 3): >= 30x the dense baseline's
training samples/s and <= 1/10 of its peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH, T_SCALE, FEAT_DIM = 16, 100, 400
STEPS = {"dense": (1, 2), "fast": (1, 3)}  # (warm-up, timed)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_config(impl: str, precision: str, mode: str) -> dict[str, float]:
    """One configuration, in this process: samples/s and memory."""
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    if impl == "dense":
        from benchmarks.bmn_reference import ReferenceBMN

        model = ReferenceBMN(temporal_scale=T_SCALE, feat_dim=FEAT_DIM)
    else:
        from visionzoo.models.bmn import BMN

        model = BMN(temporal_scale=T_SCALE, feat_dim=FEAT_DIM)
    x = torch.randn(BATCH, FEAT_DIM, T_SCALE)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        if mode == "train":
            with autocast:
                confidence, start, end = model(x)
            loss = confidence.float().mean() + start.float().mean() + end.float().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), autocast:
                model(x)

    base_rss = _rss_mb()
    warmup, timed = STEPS[impl]
    for _ in range(warmup):
        step()
    start_time = time.perf_counter()
    for _ in range(timed):
        step()
    seconds = (time.perf_counter() - start_time) / timed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_step": seconds, "samples_per_s": BATCH / seconds, "peak_mb": peak, "growth_mb": peak - base_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="impl,precision,mode: run one configuration and print JSON (internal)")
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_config(*args.config.split(","))))
        return

    from benchmarks.report import markdown_table, write_section

    results: dict[tuple[str, str, str], dict[str, float]] = {}
    for mode in ("train", "infer"):
        for precision in ("fp32", "bf16"):
            for impl in ("dense", "fast"):
                cmd = [sys.executable, __file__, "--config", f"{impl},{precision},{mode}"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
                results[impl, precision, mode] = json.loads(out.stdout.strip().splitlines()[-1])
                print(impl, precision, mode, results[impl, precision, mode], flush=True)

    rows = []
    for mode in ("train", "infer"):
        for precision in ("fp32", "bf16"):
            dense, fast = results["dense", precision, mode], results["fast", precision, mode]
            speedup = fast["samples_per_s"] / dense["samples_per_s"]
            growth_ratio = fast["growth_mb"] / dense["growth_mb"]
            peak_ratio = fast["peak_mb"] / dense["peak_mb"]
            for name, r in (("dense (reference)", dense), ("ours (bm_impl auto)", fast)):
                rows.append(
                    {
                        "mode": mode,
                        "precision": precision,
                        "model": name,
                        "s/step": f"{r['s_per_step']:.2f}",
                        "samples/s": f"{r['samples_per_s']:.2f}",
                        "peak RSS MB": f"{r['peak_mb']:.0f}",
                        "RSS growth MB": f"{r['growth_mb']:.0f}",
                        "speed-up": "1x"
                        if r is dense
                        else f"{speedup:.1f}x" + (" (goal 30x)" if mode == "train" else ""),
                        "memory vs dense": "1"
                        if r is dense
                        else f"growth {growth_ratio:.3f}, peak {peak_ratio:.3f}"
                        + (" (goal <= 0.1)" if mode == "train" else ""),
                    }
                )
    steps = ", ".join(f"{k}: {w} warm-up + {t} timed steps" for k, (w, t) in STEPS.items())
    body = (
        f"Batch {BATCH}, T={T_SCALE}, feat_dim {FEAT_DIM}; train = forward + backward + Adam step, "
        f"infer = forward under no_grad; bf16 = `torch.autocast('cpu', dtype=torch.bfloat16)`. {steps}. "
        "One subprocess per row; peak = ru_maxrss, growth = peak minus RSS after building model, optimizer and "
        "batch. bm_impl auto = CSR in fp32, one GEMM under bf16.\n\n" + markdown_table(rows)
    )
    write_section("bench_bmn_train", body)


if __name__ == "__main__":
    main()
