"""Where a BMN training step's time goes: forward, backward and the optimizer, by layer, from torch.profiler.

Usage: python benchmarks/bench_bmn_step.py [--amp off|bf16] [--steps N]

The task's real step (`bmn_anet`: targets, BMN loss, backward, Adam) at batch 16, T=100, feat_dim 400, with this
process's torch threads. Every operator the profiler records is put under the part of the step that ran it:
the forward of a layer (its module's forward, labelled), the loss, the backward node autograd ran for it
(`ConvolutionBackward0`, `_SparseSampleBackward`, ...), or the optimizer. Rows are sorted by time; the
milliseconds are per step (the mean over `--steps` profiled steps after one warm-up). It explains the
bench_bmn_train figure: which layers a faster step would have to speed up.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from anywhere
from benchmarks.report import markdown_table, write_section  # noqa: E402

BATCH = 16
FORWARD, LOSS, OPTIMIZER = "forward: ", "loss (targets + BMN loss)", "optimizer (Adam)"
LAYERS = {
    "x_1d_b": "base 1-D convs",
    "x_1d_s": "start head",
    "x_1d_e": "end head",
    "x_1d_p": "proposal 1-D conv",
    "x_3d_p": "Conv3d-first GEMM, BM layer (CSR) and the 2-D head",  # _proposal_map: hooked below as one part
}


def _part(event) -> str:
    """The part of the step an event belongs to: its nearest ancestor that names one."""
    node = event
    while node is not None:
        if node.name.startswith("autograd::engine::evaluate_function: "):
            return "backward: " + node.name.removeprefix("autograd::engine::evaluate_function: ")
        if node.name.startswith(FORWARD) or node.name == LOSS:
            return node.name
        if node.name.startswith("Optimizer.step"):
            return OPTIMIZER
        node = node.cpu_parent
    return "other"


def profile_step(amp: str, steps: int) -> tuple[list[dict[str, object]], float]:
    """(rows, milliseconds per step) of the profiled training steps."""
    warnings.filterwarnings("ignore")
    from visionzoo.recipes import get_recipe
    from visionzoo.tasks import make_task

    torch.manual_seed(0)
    task = make_task(get_recipe("bmn_anet").replace(amp="off"))
    model = task.build_model()
    batch = task.example_batch(BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")
    parts = {name: FORWARD + label for name, label in LAYERS.items()}

    def labelled(function, label):
        def run(*args, **kwargs):
            with record_function(label):
                return function(*args, **kwargs)

        return run

    for name in ("x_1d_b", "x_1d_s", "x_1d_e", "x_1d_p"):  # each layer's forward under its own label
        module = getattr(model, name)
        module.forward = labelled(module.forward, parts[name])
    model._proposal_map = labelled(model._proposal_map, parts["x_3d_p"])

    def step() -> None:
        with autocast, record_function(LOSS):
            loss, _ = task.train_step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        totals[_part(event)] += event.self_cpu_time_total / 1000 / steps
    total = sum(totals.values())
    rows = [
        {"part of the step": part, "ms per step": f"{ms:.1f}", "share": f"{100 * ms / total:.1f} %"}
        for part, ms in sorted(totals.items(), key=lambda item: -item[1])
        if ms >= 0.005 * total
    ]
    return rows, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", choices=("off", "bf16"), default="off")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    from visionzoo.engine.hardware import machine

    rows, total = profile_step(args.amp, args.steps)
    body = (
        f"{machine().describe()}; {torch.get_num_threads()} torch threads. One `bmn_anet` training step at batch "
        f"{BATCH}, {'fp32' if args.amp == 'off' else 'bf16 autocast'}: {total:.0f} ms of operator time per step "
        f"(profiler self time, mean of {args.steps}; parts under 0.5 % left out). `forward: X` is the forward "
        "of layer X, the loss rows include the targets, `backward: Node` is the autograd node's backward (the "
        "layers' backward: ConvolutionBackward0 for the convolutions, MmBackward0 for the Conv3d-first GEMM and "
        f"the head's first 1x1 conv, _SparseSampleBackward for the BM layer).\n\n{markdown_table(rows)}"
    )
    print(body)
    write_section("bench_bmn_step", body)


if __name__ == "__main__":
    main()
