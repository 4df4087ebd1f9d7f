"""Training and inference speed of the classifiers on this machine: fp32 vs bf16, NCHW vs channels_last.

Each configuration runs `visionzoo bench ... --json` in its own process, so peak memory is its own.
Usage: python benchmarks/bench_classifiers.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, write_section  # noqa: E402

# (label, recipe, extra flags): the CIFAR recipe at its own size, the ImageNet models at 224.
CONFIGS = [
    ("cspdarknet53 @32 (CIFAR-10)", "cspdarknet53_cifar10", ["-b", "64"]),
    ("ghostnet_100 @224", "ghostnet_imagenet", ["-b", "32"]),
    ("resnet50 @224", "resnet50_bam_imagenet", ["-b", "32", "--model", "resnet50"]),
    ("resnet50_bam @224", "resnet50_bam_imagenet", ["-b", "32"]),
    ("cspdarknet53 @224", "ghostnet_imagenet", ["-b", "32", "--model", "cspdarknet53", "--drop-rate", "0"]),
]


def run(recipe: str, extra: list[str], mode: str, amp: str, channels_last: bool, steps: int) -> dict:
    flags = ["--mode", mode, "--amp", amp, "--steps", str(steps), "--warmup", "2", "--device", "cpu", "--json"]
    flags.append("--channels-last" if channels_last else "--no-channels-last")
    out = subprocess.run(
        [sys.executable, "-m", "visionzoo", "bench", recipe, *extra, *flags], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="CIFAR recipe only")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for label, recipe, extra in CONFIGS[:1] if args.quick else CONFIGS:
        for mode in ("train", "infer"):
            base = None
            for amp in ("off", "bf16"):
                for channels_last in (False, True):
                    result = run(recipe, extra, mode, amp, channels_last, args.steps)
                    base = base or result["samples_per_sec"]
                    rows.append(
                        {
                            "model": label,
                            "mode": mode,
                            "amp": amp,
                            "channels_last": channels_last,
                            "batch": result["batch_size"],
                            "samples/s": f"{result['samples_per_sec']:.1f}",
                            "vs fp32 NCHW": f"{result['samples_per_sec'] / base:.2f}x",
                            "ms/step": f"{result['ms_per_step']:.0f}",
                            "peak RSS MB": f"{result['peak_memory_mb']:.0f}",
                            "params": f"{result['params'] / 1e6:.2f} M",
                            "GMACs": f"{result['gmacs_per_sample']:.3f}",
                        }
                    )
                    print(rows[-1], flush=True)
    body = (
        "Synthetic batches of the real shape; `visionzoo bench RECIPE --mode train|infer --amp off|bf16 "
        f"[--channels-last]`, {args.steps} timed steps after 2 warm-up steps, one process per row.\n\n"
        + markdown_table(rows)
    )
    write_section("bench_classifiers", body)


if __name__ == "__main__":
    main()
