"""Shared fixtures: an isolated cache folder and small datasets in the real on-disk formats."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from visionzoo.data.cifar10 import META_FILE, TEST_FILE, TRAIN_FILES, write_batch
from visionzoo.models import ModelCfg, is_model, register_model

SHARED_ACTIVITYNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "activitynet"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The machine first (also under -q), so that a failure names the CPU and the kernels it happened on."""
    from visionzoo.engine.hardware import machine

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"machine: {machine().describe()}")


def error_line(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """The one `visionzoo: error:` line a failing command ends with (after its warnings and progress lines),
    exit status 2."""
    from visionzoo.cli import main

    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in lines if line.startswith("visionzoo: error:")] == lines[-1:], lines
    return lines[-1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["VISIONZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def one_thread():
    """Small forwards and exports run faster on one thread; two threads per process on 2 shared cores spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def preempted_after(steps: int) -> Iterator[None]:
    """SIGTERM this process during its training step `steps`: the run saves after that step and stops, as a
    preempted job does (classification tasks)."""
    from visionzoo.tasks.classification import ClassificationTask

    original, calls = ClassificationTask.train_step, 0

    def train_step(self: ClassificationTask, model: nn.Module, batch: object) -> object:
        nonlocal calls
        calls += 1
        if calls == steps:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)

    ClassificationTask.train_step = train_step
    try:
        yield
    finally:
        ClassificationTask.train_step = original


def make_tiny_cifar(root: Path, per_batch: int = 16, test: int = 32, seed: int = 0) -> Path:
    """A CIFAR-10-format dataset whose classes differ by colour, so a model can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.integers(0, 10, n)
        base = (labels[:, None] * 25).astype(np.int64)
        data = np.clip(base + rng.integers(0, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return data, labels.tolist()

    for name in TRAIN_FILES:
        data, labels = batch(per_batch)
        write_batch(root / name, {"data": data, "labels": labels})
    data, labels = batch(test)
    write_batch(root / TEST_FILE, {"data": data, "labels": labels})
    write_batch(root / META_FILE, {"label_names": [f"c{i}" for i in range(10)]})
    return root


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> Path:
    return make_tiny_cifar(tmp_path / "cifar")


class TinyNet(nn.Module):
    """A few-thousand-parameter classifier with BN and dropout, so engine tests exercise every state quickly."""

    def __init__(self, num_classes: int = 10, drop_rate: float = 0.0, **_: object) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.drop_rate = num_classes, 16, drop_rate
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes, self.fc = num_classes, nn.Linear(16, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = nn.functional.dropout(x.mean((2, 3)), self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


if not is_model("tiny_test_net"):

    @register_model(ModelCfg(classifier="fc"))
    def tiny_test_net(**kwargs) -> TinyNet:
        return TinyNet(**kwargs)


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Fresh BNs are the identity in eval mode, and the references set biases and some BN weights to constants
    (BAM zeroes every bias, timm zeroes each DarkBlock's last BN weight): random values make any term that a
    model of ours dropped, misplaced or misloaded visible in the outputs. The model in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def fill(tensor: torch.Tensor, low: float, high: float) -> None:
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                fill(module.running_mean, -0.2, 0.2)
                fill(module.running_var, 0.5, 2.0)
                fill(module.weight, 0.5, 1.5)
                fill(module.bias, -0.2, 0.2)
            elif isinstance(module, nn.Conv2d | nn.Conv3d | nn.Linear) and module.bias is not None:
                fill(module.bias, -0.1, 0.1)
    return model.eval()
