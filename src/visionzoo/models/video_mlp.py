"""A video-level classifier on snippet features: temporal mean and max pooling, then a two-layer MLP.

Untrimmed videos hold their action in part of the snippets only: the mean says what the video is about, the
max keeps a short action that the mean would dilute (THUMOS14 videos are mostly background). It is the
built-in replacement for the external classifiers that detection needs (CUHK 2017 on ActivityNet,
UntrimmedNet on THUMOS14).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionzoo.models.registry import ModelCfg, register_model


class VideoMLP(nn.Module):
    """[B, feat_dim, T] features -> [B, num_classes] logits (timm API: forward_features, forward_head)."""

    def __init__(
        self, num_classes: int = 200, feat_dim: int = 400, hidden_dim: int = 512, drop_rate: float = 0.5
    ) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.drop_rate = num_classes, hidden_dim, drop_rate
        self.norm = nn.LayerNorm(2 * feat_dim)
        self.fc1 = nn.Linear(2 * feat_dim, hidden_dim)
        self.fc = nn.Linear(hidden_dim, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes, self.fc = num_classes, nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return F.gelu(self.fc1(self.norm(pooled)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(ModelCfg(task="video_classification", input_size=(400, 100), classifier="fc"))
def video_mlp(**kwargs) -> VideoMLP:
    """Mean + max pooling over time, LayerNorm, Linear(2 D, 512), GELU, dropout, Linear(512, classes)."""
    return VideoMLP(**kwargs)
