"""`visionzoo bench` times the step that training runs, not a copy of it."""

from __future__ import annotations

import pytest
import torch

from visionzoo.engine.bench import bench
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
