"""Weights for sharing: a safetensors state dict with the model card in its metadata and beside it."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from visionzoo.engine.checkpoint import save_weights
from visionzoo.export.model_card import ModelCard, card_path
from visionzoo.files import write_text


def export_safetensors(model: nn.Module, card: ModelCard, path: str | Path) -> tuple[Path, Path]:
    """Weights only (the state dict, model name in the metadata) and the card as `<file>.json` beside it."""
    path = Path(path)
    card.export |= {"format": "safetensors"}
    metadata = {"model": card.model, "format": "pt", "visionzoo.card": json.dumps(card.to_dict())}
    save_weights(path, model.state_dict(), metadata)
    write_text(card_path(path), card.to_json())
    return path, card_path(path)
