"""Every CUDA path once, and training speed per recipe against the seeds' 1-device figures, on a lent GPU.

In one short run (under 8 minutes on one GPU): bench each recipe's training step in bf16, fp16 + GradScaler
(the seeds' AMP) and, for the classifiers, channels_last and torch.compile; a 1-epoch training run through
torchrun with nccl on 1 process (and 2 when there are 2 GPUs); the onnxruntime CUDA provider when installed.
Writes the `gpu_check` section of docs/benchmarks.md and prints it. Every check that fails is reported as
failed (with its error's last line) and the rest still run.

Usage: python benchmarks/gpu_check.py [--steps 20] [--skip-compile]
       python benchmarks/gpu_check.py --device cpu --quick   (checks the script itself on a CPU; writes nothing)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

# recipe, batch per device, the seed's 1-device training speed (samples/s) and where it was measured
RECIPES = [
    ("ghostnet_imagenet", 256, 1378.8, "Ascend 910, fp16 O2"),
    ("cspdarknet53_cifar10", 64, 1245.03, "Ascend 910"),
    ("resnet50_bam_imagenet", 128, 692.0, "V100 (MindSpore GPU, 8 cards / 8)"),
    ("bmn_anet", 16, 65.0, "Ascend 910, AMP O1"),
]


def bench(recipe: str, batch: int, amp: str, channels_last: bool, compile: bool, steps: int, device: str) -> dict:
    flags = ["--mode", "train", "--amp", amp, "-b", str(batch), "--steps", str(steps), "--warmup", "3"]
    flags += ["--device", device, "--json", "--channels-last" if channels_last else "--no-channels-last"]
    flags += ["--compile"] if compile else ["--no-compile"]
    command = [sys.executable, "-m", "visionzoo", "bench", recipe, *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def nccl_run(processes: int, work: Path, device: str) -> str:
    out = work / f"ddp{processes}"
    command = [sys.executable, "-m", "visionzoo", "train", "cspdarknet53_cifar10", "--data", "digits", "--epochs", "1",
               "--device", device, "--devices", str(processes), "--output", str(out), "-j", "2"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["no output"])[-1]
    summary = json.loads((out / "summary.json").read_text())
    return (
        f"ok in {time.perf_counter() - start:.0f} s: top-1 {summary['final']['top1']:.1f} %, "
        f"{summary['samples_per_sec']:.0f} images/s over {summary['world_size']} process(es)"
    )


def onnxruntime_cuda(work: Path) -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "skipped: onnxruntime not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"skipped: providers {ort.get_available_providers()}"
    from visionzoo.export.model_card import card_from_recipe
    from visionzoo.export.onnx import example_inputs, export_onnx, torch_outputs
    from visionzoo.recipes import get_recipe

    card = card_from_recipe(get_recipe("resnet50_bam_imagenet"))
    model = card.build_model()
    export_onnx(model, card, work / "r50bam.onnx", dynamic_batch=True)
    session = ort.InferenceSession(str(work / "r50bam.onnx"), providers=["CUDAExecutionProvider"])
    x = example_inputs(card, 8, "real")
    got = session.run(None, {"input": x.numpy()})[0]
    expected = torch_outputs(model, x)[0]
    rel = float(abs(got - expected).max() / abs(expected).max())
    start = time.perf_counter()
    for _ in range(20):
        session.run(None, {"input": x.numpy()})
    return f"ok: max rel diff to torch fp32 {rel:.1e}, {8 * 20 / (time.perf_counter() - start):.0f} images/s (batch 8)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself (bf16 only)")
    parser.add_argument("--quick", action="store_true", help="batch 2 everywhere (with --device cpu)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run it on a GPU machine")
    rows = []
    for recipe, batch, seed_speed, seed_where in RECIPES:
        classifier, batch = recipe != "bmn_anet", 2 if args.quick else batch
        configs = [("bf16", False, False)] + ([("fp16", False, False)] if args.device == "cuda" else [])
        if classifier:
            configs += [("bf16", True, False)] + ([] if args.skip_compile else [("bf16", True, True)])
        for amp, channels_last, compile in configs:
            result = bench(recipe, batch, amp, channels_last, compile, args.steps, args.device)
            speed = result.get("samples_per_sec")
            rows.append(
                {
                    "recipe": recipe,
                    "amp": amp,
                    "channels_last": channels_last,
                    "compile": compile,
                    "batch": batch,
                    "samples/s": f"{speed:.1f}" if speed else result["error"],
                    "MFU": f"{100 * result['mfu']:.1f} %" if speed else "",
                    "seed 1-device": f"{seed_speed} ({seed_where})",
                    "vs seed": f"{speed / seed_speed:.2f}x" if speed else "",
                }
            )
            print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        checks = [
            f"- torchrun, 1 process: {nccl_run(1, Path(tmp), args.device)}",
            f"- torchrun, 2 processes: {nccl_run(2, Path(tmp), args.device)}"
            if torch.cuda.device_count() >= 2
            else "- torchrun, 2 processes: skipped (one GPU)",
            f"- onnxruntime CUDA provider: {onnxruntime_cuda(Path(tmp))}",
        ]
    if args.device != "cuda":
        print("\n".join(checks))
        return
    body = (
        f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}. Training steps of each recipe "
        f"(`visionzoo bench RECIPE --mode train --device cuda`, {args.steps} timed steps after 3 warm-up; MFU "
        "against the measured bf16/fp16 peak of this GPU); fp16 runs with the gradient scaler.\n\n"
        + markdown_table(rows)
        + "\n\n"
        + "\n".join(checks)
    )
    write_section("gpu_check", body)
    print(body)


if __name__ == "__main__":
    main()
