"""Training and inference speed of the classifiers against the reference code, on this machine, in one run.

For each model: the reference implementation (the literal transcriptions in benchmarks/*_reference.py) in eager
fp32, NCHW, as its authors run it; then ours in fp32 and bf16, NCHW and channels_last, eager and compiled
(--compile). Every row is `visionzoo.engine.bench.bench` (the recipe's own loss, optimizer step with its
clipping, and MFU against this machine's measured peak for the dtype) in its own process, so memory and compiled
code do not leak between rows. bf16 rows are skipped where bf16 is emulated (no AMX / AVX512-BF16): they would
only measure the emulation.
Goals (issue 10): GhostNet training >= 1.6x the reference; ResNet50-BAM and CSPDarknet53 >= 1.3x or >= 85 % MFU.

Usage: python benchmarks/bench_classifiers.py [--quick] [--steps N] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# label, recipe, model, batch, image size, training goal: speed-up over the reference, or else MFU (None: none)
MODELS = [
    ("ghostnet_100 @224", "ghostnet_imagenet", "ghostnet_100", 32, 224, (1.6, None)),
    ("resnet50_bam @224", "resnet50_bam_imagenet", "resnet50_bam", 32, 224, (1.3, 0.85)),
    ("cspdarknet53 @224", "ghostnet_imagenet", "cspdarknet53", 32, 224, (1.3, 0.85)),
    ("cspdarknet53 @32 (CIFAR-10)", "cspdarknet53_cifar10", "cspdarknet53", 64, 32, (1.3, 0.85)),
]
REFERENCE_NAME = "reference_model"


def reference_builder(model: str):
    """The reference implementation of `model`, as a builder taking the class count."""
    if model == "ghostnet_100":
        from benchmarks.ghostnet_reference import ghostnet

        return lambda num_classes: ghostnet(num_classes=num_classes)
    if model == "resnet50_bam":
        from benchmarks.resnet_bam_reference import ResidualNet

        return lambda num_classes: ResidualNet("ImageNet", 50, num_classes, "BAM")
    from benchmarks.cspdarknet_reference import cspdarknet53

    return lambda num_classes: cspdarknet53(num_classes=num_classes)


def run_config(config: dict) -> dict:
    """One row in this process: the recipe fitted to the model and size, the reference registered if asked."""
    from visionzoo.engine.bench import bench
    from visionzoo.models import ModelCfg, register_model
    from visionzoo.recipes import get_recipe

    recipe = get_recipe(config["recipe"])
    model = config["model"]
    if config["reference"]:
        build = reference_builder(model)

        def reference_model(**kwargs):  # the recipe's kwargs (drop_rate, ...) are ours: the reference has its own
            return build(kwargs.get("num_classes", 1000))

        reference_model.__name__ = REFERENCE_NAME
        register_model(ModelCfg())(reference_model)
        model = REFERENCE_NAME
    recipe = recipe.replace(
        model=model,
        img_size=config["size"],
        batch_size=config["batch"],
        amp=config["amp"],
        channels_last=config["channels_last"],
        compile=config["compile"],
        device="cpu",
    )
    return bench(recipe, config["mode"], steps=config["steps"], warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", help="one row as JSON (internal)")
    parser.add_argument("--quick", action="store_true", help="CSPDarknet53 at 32 only, 2 steps")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_config(json.loads(args.config))))
        return

    from visionzoo.engine.hardware import cpu_flags, has_native_bf16

    precisions = ["off", "bf16"] if has_native_bf16(cpu_flags()) else ["off"]
    rows = []
    for label, recipe, model, batch, size, _ in MODELS[-1:] if args.quick else MODELS:
        for mode in ("train", "infer"):
            configs = [("reference", "off", False, False)]
            configs += [("ours", amp, cl, False) for amp in precisions for cl in (False, True)]
            configs += [] if args.no_compile else [("ours", amp, True, True) for amp in precisions]
            base = None
            for code, amp, channels_last, compile in configs:
                config = {"recipe": recipe, "model": model, "reference": code == "reference",
                          "size": size, "batch": batch, "amp": amp, "channels_last": channels_last,
                          "compile": compile, "mode": mode, "steps": 2 if args.quick else args.steps}  # fmt: skip
                out = subprocess.run([sys.executable, __file__, "--config", json.dumps(config)], capture_output=True,
                                     text=True, cwd=ROOT)  # fmt: skip
                if out.returncode != 0:
                    print(f"{label} {mode} {code} {amp}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                base = base or result["samples_per_sec"]
                rows.append(
                    {
                        "model": label,
                        "mode": mode,
                        "code": code,
                        "precision": "fp32" if amp == "off" else amp,
                        "channels_last": channels_last,
                        "compile": compile,
                        "batch": batch,
                        "samples/s": f"{result['samples_per_sec']:.1f}",
                        "vs reference": f"{result['samples_per_sec'] / base:.2f}x",
                        "MFU": f"{100 * result['mfu']:.1f} %",
                        "first step s": f"{result['first_step_s']:.1f}",
                        "peak RSS MB": f"{result['peak_memory_mb']:.0f}",
                        "speedup": result["samples_per_sec"] / base,
                        "mfu": result["mfu"],
                    }
                )
                print(rows[-1], flush=True)
    write_report(rows, 2 if args.quick else args.steps)


def goal_lines(rows: list[dict]) -> list[str]:
    """Per model: the fastest training row of ours against the issue's goal, met or missed and by how much."""
    lines = []
    for label, *_, (speedup_goal, mfu_goal) in MODELS:
        ours = [r for r in rows if r["model"] == label and r["mode"] == "train" and r["code"] == "ours"]
        if not ours:
            continue
        best = max(ours, key=lambda r: r["speedup"])
        setting = f"{best['precision']}{', channels_last' if best['channels_last'] else ''}"
        setting += ", compiled" if best["compile"] else ""
        met = best["speedup"] >= speedup_goal or (mfu_goal is not None and best["mfu"] >= mfu_goal)
        goal = f"{speedup_goal}x the reference" + (f" or {100 * mfu_goal:.0f} % MFU" if mfu_goal else "")
        verdict = "met" if met else f"missed by {speedup_goal - best['speedup']:.2f}x"
        lines.append(
            f"- {label}, training: fastest {best['speedup']:.2f}x the reference at {100 * best['mfu']:.1f} % MFU "
            f"({setting}); goal {goal}: **{verdict}**."
        )
    return lines


def write_report(rows: list[dict], steps: int) -> None:
    from benchmarks.report import markdown_table, write_section

    table = [{k: v for k, v in row.items() if k not in ("speedup", "mfu")} for row in rows]
    body = (
        "Synthetic batches of the real shape, `visionzoo.engine.bench.bench` per row in its own process, "
        f"{steps} timed steps after the first (compiling) step and 2 warm-up steps. "
        "`reference` = the authors' code (transcribed in benchmarks/) in eager fp32 NCHW; MFU = FLOPs of the "
        "step (train: forward + backward) x samples/s over this machine's measured peak for the row's dtype. "
        "`first step s` includes torch.compile's compilation where compile is on.\n\n"
        + markdown_table(table)
        + "\n\n"
        + "\n".join(goal_lines(rows))
    )
    write_section("bench_classifiers", body)


if __name__ == "__main__":
    main()
