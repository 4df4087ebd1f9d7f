"""Options and YAML values out of range or of the wrong type: refused before any work, nothing written."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import make_tiny_cifar

from hostile import Hostile, Outcome, hostile, train_cifar

# (case, extra arguments, fragment of the error line)
FLAGS = [
    ("epochs-zero", ["--epochs", "0"], "--epochs: must be >= 1, got 0"),
    ("epochs-negative", ["--epochs", "-3"], "--epochs: must be >= 1, got -3"),
    ("batch-size-zero", ["-b", "0"], "--batch-size: must be >= 1, got 0"),
    ("eval-batch-size-zero", ["--eval-batch-size", "0"], "--eval-batch-size: must be >= 1, got 0"),
    ("devices-zero", ["--devices", "0"], "--devices: must be >= 1, got 0"),
    ("lr-zero", ["--lr", "0"], "--lr: must be > 0, got 0.0"),
    ("lr-nan", ["--lr", "nan"], "--lr: must be a finite number, got nan"),
    ("lr-infinite", ["--lr", "inf"], "--lr: must be a finite number, got inf"),
    ("workers-negative", ["-j", "-1"], "--workers: must be >= 0, got -1"),
    ("hflip-above-one", ["--hflip", "1.5"], "--hflip: must be <= 1, got 1.5"),
    ("seed-negative", ["--seed", "-1"], "--seed: must be >= 0, got -1"),
    ("ema-decay-one", ["--ema-decay", "1"], "--ema-decay: must be < 1, got 1.0"),
    ("amp-unknown", ["--amp", "fast"], "--amp: expected one of auto, off, bf16, fp16, got 'fast'"),
    ("device-unknown", ["--device", "tpu"], "--device: expected one of auto, cpu, cuda, got 'tpu'"),
    ("sched-unknown", ["--sched", "linear"], "--sched: expected one of constant, step, multistep, cosine"),
    ("optimizer-unknown", ["--optimizer", "lamb"], "--optimizer: expected one of sgd, adam, adamw"),
    ("data-format-of-another-task", ["--data-format", "activitynet"], "--data-format: expected one of cifar10, imag"),
    ("model-unknown", ["--model", "no_such_net"], "--model: expected one of"),
    ("rrc-scale-reversed", ["--rrc-scale", "1.0", "0.08"], "--rrc-scale: must not decrease, got [1.0, 0.08]"),
    ("rrc-scale-three-values", ["--rrc-scale", "0.1", "0.5", "1"], "--rrc-scale: expected 2 values, got 3"),
    ("mean-of-two-channels", ["--mean", "0.5", "0.5"], "--mean: expected 3 values, got 2"),
    ("std-zero", ["--std", "0.2", "0", "0.2"], "--std: must be > 0, got 0.0"),
    ("finetune-missing", ["--finetune", "no/such.safetensors"], "--finetune no/such.safetensors: no such file"),
]  # fmt: skip

# (case, YAML text, fragment of the error line after "--config FILE: ")
YAML = [
    ("yaml-epochs-many", {"epochs": "many"}, "epochs: expected an integer, got 'many'"),
    ("yaml-epochs-true", {"epochs": True}, "epochs: expected an integer, got True"),
    ("yaml-epochs-fraction", {"epochs": 2.5}, "epochs: expected an integer, got 2.5"),
    ("yaml-epochs-null", {"epochs": None}, "epochs: a value is required"),
    ("yaml-lr-list", {"lr": [0.1]}, "lr: expected a number, got [0.1]"),
    ("yaml-lr-negative", {"lr": -0.1}, "lr: must be > 0, got -0.1"),
    ("yaml-hflip-text", {"hflip": "often"}, "hflip: expected a number, got 'often'"),
    ("yaml-nesterov-text", {"nesterov": "yes please"}, "nesterov: expected true or false, got 'yes please'"),
    ("yaml-mean-scalar", {"mean": 0.5}, "mean: expected a list, got 0.5"),
    ("yaml-model-kwargs-list", {"model_kwargs": [1, 2]}, "model_kwargs: expected a mapping, got [1, 2]"),
    ("yaml-data-number", {"data": 7}, "data: expected text, got 7"),
]


def _flag_case(extra: list[str], fragment: str):
    def generate(folder: Path) -> Hostile:
        return Hostile(train_cifar(make_tiny_cifar(folder / "cifar"), folder / "run", *extra), error=fragment)

    return generate


def _yaml_case(values: dict, fragment: str):
    def generate(folder: Path) -> Hostile:
        config = folder / "bad.yaml"
        config.write_text(yaml.safe_dump(values))
        argv = train_cifar(make_tiny_cifar(folder / "cifar"), folder / "run", "--config", str(config))
        return Hostile(argv, error=f"--config {config}: {fragment}")

    return generate


for _name, _extra, _fragment in FLAGS:
    hostile(_name)(_flag_case(_extra, _fragment))
for _name, _values, _fragment in YAML:
    hostile(_name)(_yaml_case(_values, _fragment))


@hostile("yaml-lr-in-exponent-notation")
def lr_in_exponent_notation(folder: Path) -> Hostile:
    """PyYAML reads `1e-3` (no dot) as text; like the flag `--lr 1e-3`, it is the number 0.001."""
    config = folder / "c.yaml"
    config.write_text("lr: 1e-3\n")

    def check(outcome: Outcome) -> None:
        assert yaml.safe_load((folder / "run" / "config.yaml").read_text())["lr"] == 0.001

    argv = train_cifar(make_tiny_cifar(folder / "cifar"), folder / "run", "--config", str(config))
    return Hostile(argv, check=check)


@hostile("bench-batch-size-zero")
def bench_batch_size_zero(folder: Path) -> Hostile:
    return Hostile(["bench", "cspdarknet53_cifar10", "--model", "tiny_test_net", "-b", "0"], error="--batch-size")


@hostile("bench-steps-zero")
def bench_steps_zero(folder: Path) -> Hostile:
    argv = ["bench", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--steps", "0"]
    return Hostile(argv, error="argument --steps: must be >= 1, got 0")


@hostile("eval-data-missing")
def eval_data_missing(folder: Path) -> Hostile:
    weights = folder / "w.safetensors"
    weights.write_bytes(b"")
    argv = ["eval", "cspdarknet53_cifar10", "--checkpoint", str(weights), "--data", str(folder / "none")]
    return Hostile(argv, error=f"--data {folder / 'none'}: no such directory")
