"""The CLI: overrides and config files, and bad input ending in one clear line with nothing destroyed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from visionzoo.cli import main


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code)


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    code = _run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    return err[0]


def _train(data: Path, output: Path, *extra: str) -> list[str]:
    return [
        "train",
        "cspdarknet53_cifar10",
        "--model",
        "tiny_test_net",
        "--data",
        str(data),
        "--output",
        str(output),
        "--epochs",
        "1",
        "-b",
        "16",
        "-j",
        "0",
        *extra,
    ]


def test_recipes_lists_the_seed_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes", "--json"]) == 0
    recipes = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    seed = recipes["cspdarknet53_cifar10"]
    assert seed["reference"]["top1"] == 66.45 and seed["reference"]["images_per_sec"] == 1245.03
    assert (seed["epochs"], seed["batch_size"], seed["lr"], seed["momentum"], seed["weight_decay"]) == (
        50,
        64,
        1e-3,
        0.9,
        5e-4,
    )


def test_yaml_then_flags_override_the_recipe(tiny_cifar: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"lr": 0.2, "epochs": 3, "hflip": 0.0}))
    out = tmp_path / "run"
    assert main([*_train(tiny_cifar, out, "--config", str(config), "--lr", "0.05", "--no-channels-last")]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["lr"], saved["epochs"], saved["hflip"]) == (0.05, 1, 0.0)  # flags beat the file
    assert saved["global_batch_size"] == 16 and saved["world_size"] == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "no_such_recipe"], "unknown recipe 'no_such_recipe'"),
        (["train", "cspdarknet53_cifar10", "--no-such-field", "1"], "unrecognized arguments: --no-such-field"),
        (["train", "cspdarknet53_cifar10", "--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
        (["train", "cspdarknet53_cifar10", "--data", "/no/such/dir"], "--data /no/such/dir: no such directory"),
        (["train", "cspdarknet53_cifar10", "--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA device"),
        (["train", "cspdarknet53_cifar10", "--config", "/no/such.yaml"], "--config /no/such.yaml: no such file"),
    ],
)
def test_bad_usage_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert expected in _error_line(capsys, argv)


def test_unknown_yaml_field_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    line = _error_line(capsys, ["train", "cspdarknet53_cifar10", "--config", str(config)])
    assert f"--config {config}: unknown field(s) learning_rate" in line


def test_wrong_cifar_shape_names_the_file(capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path) -> None:
    import pickle

    import numpy as np

    with open(tiny_cifar / "data_batch_2", "wb") as handle:
        pickle.dump({"data": np.zeros((3, 32, 32), np.uint8), "labels": [0, 1, 2]}, handle, protocol=2)
    line = _error_line(capsys, _train(tiny_cifar, tmp_path / "run"))
    assert "data_batch_2: 'data' must be a uint8 array of shape [N, 3072]" in line


def test_existing_run_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(_train(tiny_cifar, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = _error_line(capsys, _train(tiny_cifar, out))
    assert f"{out}: already holds a run" in line and "--resume auto" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_checkpoint_of_another_model_is_refused(
    capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(_train(tiny_cifar, out)) == 0
    capsys.readouterr()
    line = _error_line(
        capsys,
        [
            "eval",
            "cspdarknet53_cifar10",
            "--data",
            str(tiny_cifar),
            "--checkpoint",
            str(out / "best.safetensors"),
            "-j",
            "0",
        ],
    )
    assert "best.safetensors: weights do not fit CspDarknet" in line and "missing" in line


def test_eval_reproduces_the_training_metrics(
    capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(_train(tiny_cifar, out)) == 0
    capsys.readouterr()
    final = json.loads((out / "summary.json").read_text())["final"]
    assert (
        main(
            [
                "eval",
                "cspdarknet53_cifar10",
                "--model",
                "tiny_test_net",
                "--data",
                str(tiny_cifar),
                "--checkpoint",
                str(out / "last.safetensors"),
                "-j",
                "0",
                "--json",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["top1"] == pytest.approx(final["top1"]) and metrics["eval_loss"] == pytest.approx(final["eval_loss"])


def test_finetune_drops_a_classifier_of_another_shape(
    capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(_train(tiny_cifar, out, "--num-classes", "12")) != 0  # 10 classes in the data: refused
    assert "10 classes, but --num-classes is 12" in capsys.readouterr().err
    assert main(_train(tiny_cifar, tmp_path / "ten")) == 0
    capsys.readouterr()
    weights = tmp_path / "ten" / "last.safetensors"
    assert main(_train(tiny_cifar, tmp_path / "ft", "--finetune", str(weights))) == 0
    assert "all layers loaded" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "visionzoo",
            "train",
            "cspdarknet53_cifar10",
            "--output",
            str(blocker / "run"),
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"visionzoo: error: --output {blocker / 'run'}: cannot write there (Not a directory)"
    ]


def test_the_old_dataset_key_is_read_as_data_format_with_a_deprecation_line(
    capsys: pytest.CaptureFixture[str], tiny_cifar: Path, tmp_path: Path
) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump({"dataset": "cifar10"}))
    out = tmp_path / "run"
    assert main(_train(tiny_cifar, out, "--config", str(config))) == 0
    assert "'dataset' is now called 'data_format'" in capsys.readouterr().err
    assert yaml.safe_load((out / "config.yaml").read_text())["data_format"] == "cifar10"
