"""`--amp auto` picks what the machine runs fast and says why; the fp16 + gradient-scaler path runs on CPU too."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from visionzoo.cli import main
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.engine import precision
from visionzoo.engine.hardware import cpu_flags, has_native_bf16
from visionzoo.engine.optim import optimizer_step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
AVX2 = frozenset({"avx", "avx2", "fma"})
AVX512_BF16 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Pretend to be a CPU with these flags."""

    def pretend(flags: frozenset[str]) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: flags)

    return pretend


def test_auto_on_a_cpu_without_native_bf16_is_fp32(machine) -> None:
    machine(AVX2)
    chosen = precision.resolve_amp("auto", CPU)
    assert chosen.resolved == "off" and "AVX2" in chosen.reason and "without native bf16" in chosen.reason


def test_auto_on_a_cpu_with_native_bf16_is_bf16_by_its_flags_alone(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(AVX512_BF16)
    monkeypatch.setattr(time, "perf_counter", lambda: pytest.fail("auto must not time anything"))
    chosen = precision.resolve_amp("auto", CPU)
    assert chosen.resolved == "bf16" and "native bf16" in chosen.reason


def test_explicit_bf16_on_an_emulating_cpu_runs_with_one_warning(machine, caplog: pytest.LogCaptureFixture) -> None:
    machine(AVX2)
    with caplog.at_level(logging.WARNING, logger="visionzoo"):
        chosen = precision.resolve_amp("bf16", CPU)
    assert chosen.resolved == "bf16"
    assert len(caplog.records) == 1 and "emulated" in caplog.text


def test_auto_on_cuda_follows_the_seeds_fp16_else_bf16_where_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.resolve_amp("auto", CUDA).resolved == "bf16"
    assert precision.resolve_amp("auto", CUDA, seed_amp="fp16").resolved == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert precision.resolve_amp("auto", CUDA).resolved == "fp16"
    assert precision.resolve_amp("fp16", CUDA).resolved == "fp16"


AUTO_CHOICES = """
import torch
from visionzoo.engine import precision as p
from visionzoo.export.model_card import card_from_recipe
from visionzoo.export.runtime import resolve_runtime
from visionzoo.recipes import get_recipe
amp = p.resolve_amp('auto', torch.device('cpu'))
print(amp)
for recipe in ('resnet50_bam_imagenet', 'bmn_anet', 'anet_video_classifier'):
    card = card_from_recipe(get_recipe(recipe))
    print(resolve_runtime(card, 'auto', p.compute_dtype(amp.resolved), torch.device('cpu')))
"""


def test_auto_gives_the_same_answer_twice_while_another_process_keeps_the_cpu_busy() -> None:
    """The choices of a run on this machine (precision, and the runtime of a classifier, BMN and the video
    classifier), in fresh processes, each time with a second process spinning."""
    import subprocess
    import sys

    probe = AUTO_CHOICES
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        answers = {subprocess.check_output([sys.executable, "-c", probe], text=True) for _ in range(2)}
    finally:
        spin.kill()
        spin.wait()
    assert len(answers) == 1
    expected = "bf16" if has_native_bf16(cpu_flags()) else "off"
    assert f"resolved='{expected}'" in answers.pop()


def test_fp16_steps_with_the_gradient_scaler_clip_unscaled_gradients() -> None:
    """The CUDA fp16 path's logic (autocast, scale, unscale, clip, step, update), run on CPU."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision.grad_scaler("fp16", CPU)
    assert scaler is not None and precision.grad_scaler("bf16", CPU) is None
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))

    def step(loss_factor: float) -> None:
        with precision.autocast("fp16", CPU):
            loss = nn.functional.cross_entropy(model(x).float(), y) * loss_factor
        optimizer_step(loss, model, optimizer, scaler, clip_grad=0.01)

    before = [p.detach().clone() for p in model.parameters()]
    step(1e4)  # scaled gradients overflow fp16: the step is skipped and the scale halved
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert scaler.get_scale() == 32768.0
    step(1.0)
    grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert float(grad_norm) == pytest.approx(0.01, rel=1e-3)  # clipped after unscaling, not the scaled values
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_ascend_bmn_recipe_whose_seed_used_fp16_trains_on_cpu(tmp_path: Path) -> None:
    data = make_anet_demo(tmp_path / "anet", videos=8, seed=1, temporal_scale=16, feat_dim=32)
    out = tmp_path / "run"
    argv = ["train", "bmn_anet_ascend", "--data", str(data), "--temporal-scale", "16", "--feat-dim", "32"]
    assert main([*argv, "--epochs", "1", "-b", "2", "-j", "0", "--output", str(out)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["amp"] == "auto" and config["amp_resolved"] in ("off", "bf16")


def test_a_resumed_run_keeps_the_precision_it_started_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1 epoch where auto takes bf16, resume on a machine where auto would take fp32: it goes on in bf16."""
    data = make_anet_demo(tmp_path / "anet", videos=8, seed=1, temporal_scale=16, feat_dim=32)
    out = tmp_path / "run"
    argv = [
        "train",
        "bmn_anet",
        "--data",
        str(data),
        "--temporal-scale",
        "16",
        "--feat-dim",
        "32",
        "-b",
        "2",
        "-j",
        "0",
    ]
    monkeypatch.setattr(precision, "_cpu_auto", lambda: ("bf16", "pretend native bf16"))
    assert main([*argv, "--epochs", "1", "--output", str(out)]) == 0
    monkeypatch.setattr(precision, "_cpu_auto", lambda: ("off", "pretend no bf16"))
    assert main([*argv, "--epochs", "2", "--output", str(out), "--resume", "auto"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["amp_resolved"] == "bf16"
