"""`visionzoo demo` writes the seed demo's three outputs for one video, and eval writes proposals + plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from visionzoo.cli import main
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.models import create_model


def test_demo_writes_candidates_proposals_and_plot(tmp_path: Path) -> None:
    data = make_anet_demo(tmp_path / "anet", videos=8, seed=1)
    torch.manual_seed(0)
    weights = tmp_path / "bmn.safetensors"
    save_file(create_model("bmn").state_dict(), str(weights))
    out = tmp_path / "demo"
    assert main(["demo", "--checkpoint", str(weights), "--data", str(data), "--output", str(out)]) == 0

    with open(out / "demo.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["xmin", "xmax", "xmin_score", "xmax_score", "clr_score", "reg_score", "score"]
    assert len(rows) == 4950  # every start <= end pair of T=100 that the reference scores
    first = {k: float(v) for k, v in rows[0].items()}
    product = first["xmin_score"] * first["xmax_score"] * first["clr_score"] * first["reg_score"]
    assert first["score"] == pytest.approx(product, rel=1e-5)
    proposals = json.loads((out / "demo_proposals.json").read_text())
    assert proposals["version"] == "VERSION 1.3" and len(proposals["results"]) == 1
    (found,) = proposals["results"].values()
    assert 0 < len(found) <= 100 and all(p["segment"][0] <= p["segment"][1] for p in found)
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
