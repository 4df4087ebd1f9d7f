"""VideoMAE (Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
Pre-Training", NeurIPS 2022) through Hugging Face `transformers`, loaded from a local folder.

Paper: https://arxiv.org/abs/2203.12602 - code: transformers `models/videomae/modeling_videomae.py`. The folder
is what `save_pretrained` writes (config.json + weights), e.g. a copy of MCG-NJU/videomae-base-finetuned-kinetics;
nothing is downloaded. transformers is an optional extra (`pip install 'visionzoo[videomae]'`), imported only
when a VideoMAE model is built.

The feature is the one the published TAD features use (VideoMAEv2 `extract_tad_feature.py`: `forward_features`
= fc_norm of the token mean): for a fine-tuned classifier folder, `fc_norm(mean of the last hidden states)`, the
input of its classifier; for a pre-training or bare-encoder folder (no fc_norm; its encoder ends with a
LayerNorm instead), the mean of the last hidden states.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch
import torch.nn as nn

from visionzoo.errors import VisionZooError
from visionzoo.models.registry import IMAGENET_MEAN, IMAGENET_STD, ClipProtocol, ModelCfg, register_model


def _transformers() -> ModuleType:
    try:
        import transformers
    except ImportError:
        raise VisionZooError(
            "VideoMAE needs Hugging Face transformers, an optional extra: pip install 'visionzoo[videomae]'"
        ) from None
    return transformers


class VideoMAE(nn.Module):
    """[B, 3, T, H, W] clips (our layout; transformers takes [B, T, C, H, W]) -> logits or features (timm API).

    `forward_features` returns the tokens [B, T/2 * H/16 * W/16, D]; `forward_head(x, pre_logits=True)` the
    D-d feature described in the module docstring. T, H, W must be the folder config's num_frames, image_size.
    """

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__()
        transformers = _transformers()
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise VisionZooError(f"{path}: not a VideoMAE model folder (no config.json; save_pretrained writes one)")
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            if config.model_type != "videomae":
                raise VisionZooError(f"{path}: holds a {config.model_type!r} model, not VideoMAE")
            classifier = "VideoMAEForVideoClassification" in (config.architectures or [])
            cls = transformers.VideoMAEForVideoClassification if classifier else transformers.VideoMAEModel
            model = cls.from_pretrained(path, local_files_only=True).float()
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VisionZooError(f"{path}: could not load VideoMAE ({first})") from None
        self.encoder = model.videomae if classifier else model
        self.fc_norm: nn.Module | None = model.fc_norm if classifier else None
        self.classifier: nn.Module = model.classifier if classifier else nn.Identity()
        self.num_features = config.hidden_size
        self.num_frames, self.image_size = config.num_frames, config.image_size  # the clip it takes
        self.num_classes = config.num_labels if classifier else 0

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixel_values=x.transpose(1, 2)).last_hidden_state

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=1)
        if self.fc_norm is not None:
            x = self.fc_norm(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# OpenTAD's THUMOS14 VideoMAE features: 16-frame clips every 4 frames at the video's own rate; VideoMAEv2's
# extract_tad_feature.py resizes to 224 x 224. VideoMAE trained with ImageNet mean/std (MCG-NJU datasets.py);
# the transformers processor defaults to 0.5/0.5: use the folder's preprocessor_config.json where it says
# otherwise.
_PROTOCOL = ClipProtocol(
    16, 4, None, (224, 224), 224, IMAGENET_MEAN, IMAGENET_STD, "rgb", "OpenTAD THUMOS14 VideoMAE features"
)


@register_model(
    ModelCfg(
        task="video_features",
        input_size=(3, 16, 224, 224),
        crop_pct=1.0,
        first_conv="encoder.embeddings.patch_embeddings.projection",
        classifier="classifier",
        protocol=_PROTOCOL,
    )
)
def videomae(model_dir: str | Path | None = None) -> VideoMAE:
    """A transformers VideoMAE folder: `create_model("videomae", model_dir=DIR)` (`pretrained` is not used)."""
    if model_dir is None:
        raise VisionZooError("videomae: give the folder of a transformers VideoMAE model (model_dir=...)")
    return VideoMAE(model_dir)
