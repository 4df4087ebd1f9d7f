"""Weight files that exist but are wrong: empty, truncated, a header that promises what the file lacks."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from conftest import make_tiny_cifar
from safetensors.torch import save_file

from hostile import Hostile, hostile, train_cifar


def _safetensors(path: Path, header: dict, body: bytes = b"") -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def _finetune(folder: Path, weights: Path, fragment: str) -> Hostile:
    argv = train_cifar(make_tiny_cifar(folder / "cifar"), folder / "run", "--finetune", str(weights))
    return Hostile(argv, error=f"{weights}: {fragment}")


@hostile("weights-header-claims-a-terabyte")
def header_claims_a_terabyte(folder: Path) -> Hostile:
    header = {"fc.weight": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 2**40]}}
    weights = _safetensors(folder / "big.safetensors", header, b"\0" * 16)
    return _finetune(folder, weights, "truncated or corrupt safetensors file: its tensors need 1099511627776 bytes")


@hostile("weights-header-length-beyond-the-file")
def header_length_beyond_the_file(folder: Path) -> Hostile:
    weights = folder / "long.safetensors"
    weights.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    return _finetune(
        folder, weights, "truncated or corrupt safetensors file: its header claims 1099511627776 bytes, the file has 10"
    )


@hostile("weights-zero-bytes")
def zero_bytes(folder: Path) -> Hostile:
    weights = folder / "empty.safetensors"
    weights.write_bytes(b"")
    return _finetune(folder, weights, "empty file")


@hostile("weights-cut-in-half")
def cut_in_half(folder: Path) -> Hostile:
    weights = folder / "half.safetensors"
    save_file({"fc.weight": torch.zeros(10, 16), "fc.bias": torch.zeros(10)}, str(weights))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return _finetune(folder, weights, "truncated or corrupt safetensors file")


@hostile("weights-header-not-json")
def header_not_json(folder: Path) -> Hostile:
    weights = folder / "garbage.safetensors"
    weights.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[")
    return _finetune(folder, weights, "truncated or corrupt safetensors file: its header is not JSON")


@hostile("eval-checkpoint-header-claims-a-terabyte")
def eval_checkpoint_header_claims_a_terabyte(folder: Path) -> Hostile:
    header = {"w": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 2**40]}}
    weights = _safetensors(folder / "big.safetensors", header)
    argv = ["eval", "cspdarknet53_cifar10", "--model", "tiny_test_net", "--checkpoint", str(weights)]
    return Hostile(argv, error=f"{weights}: truncated or corrupt safetensors file")
