"""`visionzoo bench` times the step that training runs, not a copy of it."""

from __future__ import annotations

import json

import pytest
import torch

from visionzoo.cli import main
from visionzoo.engine.bench import bench
from visionzoo.engine.flops import count_macs
from visionzoo.export import inference_bench
from visionzoo.models import create_model
from visionzoo.recipes import get_recipe


def test_bench_runs_the_recipes_optimizer_step_with_its_gradient_clipping(monkeypatch: pytest.MonkeyPatch) -> None:
    clipped: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def counting_clip(parameters, max_norm, *args, **kwargs):
        clipped.append(max_norm)
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting_clip)
    recipe = get_recipe("ghostnet_imagenet").replace(model="tiny_test_net", num_classes=10, img_size=32, batch_size=4)
    assert recipe.clip_grad == 2.0  # the seed's setting, which a bench without it would not time
    result = bench(recipe, "train", steps=2, warmup=1)
    assert clipped == [2.0] * 3 and result["samples_per_sec"] > 0  # 1 warm-up and 2 timed steps


def test_inference_bench_reports_mfu_from_the_forward_flops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`visionzoo bench RECIPE --runtime torch --json`: MFU = forward FLOPs per item x items/s / the dtype's peak."""
    peaks = {torch.float32: 2e9, torch.bfloat16: 5e9}
    monkeypatch.setattr(inference_bench, "peak_flops", lambda dtype, device: {"peak": peaks[dtype]})
    argv = ["bench", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--runtime", "torch"]
    assert main([*argv, "-b", "4", "--steps", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model = create_model("tiny_test_net", num_classes=10).eval()
    flops = 2 * count_macs(model, torch.zeros(1, 3, 32, 32))
    assert flops > 0 and [r["dtype"] for r in rows] == ["fp32", "bf16"]
    for row, peak in zip(rows, peaks.values(), strict=True):
        assert row["gflops_per_item"] == pytest.approx(flops / 1e9)
        assert row["mfu"] == pytest.approx(flops * row["items_per_sec"] / peak)
