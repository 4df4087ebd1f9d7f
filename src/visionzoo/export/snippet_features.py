"""The feature extractor of a classifier named as a user names it: a recipe or model, with its weights file.

Its preprocessing is the model card's (`export.model_card.resolve_card`): a run's own image size, crop and
normalisation when `--pretrained` comes from a training run. The extraction itself is `data.snippet_features`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from visionzoo.data.snippet_features import SnippetFeaturizer
from visionzoo.errors import VisionZooError


def load_featurizer(
    backbone: str,
    pretrained: Path | None,
    img_size: int | None = None,
    layer: str = "pre_logits",
    amp: str = "auto",
    device: torch.device | None = None,
    init_seed: int = 0,
) -> SnippetFeaturizer:
    """`backbone` (a recipe or registered classifier) with `pretrained` weights, or random ones from `init_seed`."""
    from visionzoo.export.model_card import resolve_card

    if pretrained is not None and not Path(pretrained).is_file():
        raise VisionZooError(f"--pretrained {pretrained}: no such weights file")
    card = resolve_card(backbone, pretrained, img_size)
    if card.task != "classification":
        raise VisionZooError(f"--backbone {backbone}: not an image classifier (see visionzoo models)")
    with torch.random.fork_rng(devices=[]):  # random weights: drawn from init_seed, the global RNG untouched
        torch.manual_seed(init_seed)
        model = card.build_model(pretrained=pretrained)
    return SnippetFeaturizer(model, card.preprocessing, backbone, pretrained, layer, amp, device, init_seed)
