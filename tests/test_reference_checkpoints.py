"""The reference projects' own checkpoint files load in every command a user runs, not only in create_model.

BMN: JJBOY's `BMN_best.pth.tar` ({"state_dict": {"module." + key}}, with its frozen `sample_mask`); GhostNet: the
authors' bare state dict saved before PyTorch 0.4.1 (no BN counters); ResNet50-BAM: the authors'
{"state_dict": {"module." + key}}. Each command's output must equal what the same weights give from our own
safetensors file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from visionzoo.cli import main
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.data.builtin.imagefolder_demo import make_imagefolder
from visionzoo.models import create_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@dataclass
class Case:
    recipe: str
    model: str
    reference: Path  # the reference project's file
    ours: Path  # the same weights as our safetensors
    data: Path
    flags: list[str]  # what fits the recipe to the small data


@pytest.fixture(scope="module", params=["bmn", "ghostnet_100", "resnet50_bam"])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    name, folder = request.param, tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    if name == "bmn":
        model = create_model("bmn")  # the reference's size (T=100, 400-d), as its released file
        state = {f"module.{k}": v for k, v in model.state_dict().items()}
        state["module.sample_mask"] = torch.zeros(100, 32 * 100 * 100)  # its frozen mask, dropped on load
        reference = folder / "BMN_best.pth.tar"
        torch.save({"epoch": 9, "state_dict": state}, reference)
        data = make_anet_demo(folder / "anet", videos=8, seed=1)
        case = Case("bmn_anet", "bmn", reference, folder / "ours.safetensors", data, ["-b", "2"])
    else:
        model = create_model(name, num_classes=4)
        with torch.no_grad():  # fresh BNs are the identity in eval mode: random statistics make mistakes visible
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        reference = folder / "checkpoint.pth"
        if name == "resnet50_bam":
            state = {"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 76.86}
        torch.save(state, reference)
        data = make_imagefolder(folder / "images", classes=4, per_class=4, size=40, val_per_class=2)
        recipe = "ghostnet_imagenet" if name == "ghostnet_100" else "resnet50_bam_imagenet"
        flags = ["--model", name, "--num-classes", "4", "--img-size", "32", "-b", "4"]
        case = Case(recipe, name, reference, folder / "ours.safetensors", data, flags)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(case.ours))
    return case


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The command's stdout; its stderr stays readable in `capsys`."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    print(err, end="", file=sys.stderr)
    return out


def test_eval(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    common = ["eval", case.recipe, "--data", str(case.data), *case.flags, "-j", "0", "--json"]
    found = json.loads(run(capsys, *common, "--checkpoint", str(case.reference), "--output", str(tmp_path / "r")))
    expected = json.loads(run(capsys, *common, "--checkpoint", str(case.ours), "--output", str(tmp_path / "o")))
    key = "AUC" if case.model == "bmn" else "top1"
    assert found[key] == expected[key] and found["eval_loss"] == expected["eval_loss"]


def test_predict(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    if case.model == "bmn":
        inputs = [str(case.data / "csv_mean_100"), "--video-info", str(case.data / "video_info_new.csv")]
    else:
        inputs = [str(case.data / "val")]
    found = run(capsys, "predict", case.model, "--checkpoint", str(case.reference), *inputs)
    assert found == run(capsys, "predict", case.model, "--checkpoint", str(case.ours), *inputs)


def test_export(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "exported.safetensors"
    run(
        capsys,
        "export",
        case.model,
        "--checkpoint",
        str(case.reference),
        "--format",
        "safetensors",
        "--output",
        str(out),
    )
    exported, ours = load_file(str(out)), load_file(str(case.ours))
    assert exported.keys() == ours.keys() and all(torch.equal(exported[k], ours[k]) for k in ours)


def test_demo(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if case.model != "bmn":
        pytest.skip("the demo command is BMN's")
    for weights, out in ((case.reference, tmp_path / "r"), (case.ours, tmp_path / "o")):
        run(capsys, "demo", "--checkpoint", str(weights), "--data", str(case.data), "--output", str(out))
    assert (tmp_path / "r" / "demo.csv").read_text() == (tmp_path / "o" / "demo.csv").read_text()


def test_train_finetune(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["train", case.recipe, "--data", str(case.data), *case.flags, "-j", "0", "--epochs", "1"]
    run(capsys, *argv, "--finetune", str(case.reference), "--output", str(tmp_path / "run"))
    assert f"finetune: weights from {case.reference}; all layers loaded" in capsys.readouterr().err
