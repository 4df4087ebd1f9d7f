"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

Paper: https://arxiv.org/abs/1911.11907 - reference code: huawei-noah/CV-Backbones `ghostnet_pytorch/ghostnet.py`
(commit 3e7700491d, the code the Ascend PyTorch port started from). This is the authors' PyTorch definition,
not the TF one the paper trained (that one has a clip(0, 1) SE gate, int(C/4) SE widths and a BN head), so module
names and shapes equal the authors' `state_dict_73.98.pth` and timm's `ghostnet_100`, and those files load as is.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionzoo.models.registry import ModelCfg, register_model

# One inner list per `blocks.i` group: (dw kernel, expansion channels, out channels, SE ratio, stride).
_CFGS: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    (
        (3, 200, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    ((5, 672, 160, 0.25, 2),),
    (
        (5, 960, 160, 0.0, 1),
        (5, 960, 160, 0.25, 1),
        (5, 960, 160, 0.0, 1),
        (5, 960, 160, 0.25, 1),
    ),
)
_HEAD_CHANNELS = 1280  # not scaled by width, as in the reference


def make_divisible(value: float, divisor: int = 4, min_value: int | None = None) -> int:
    """The TF-slim channel rounding: nearest multiple of `divisor`, never more than 10 % below `value`."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


class SqueezeExcite(nn.Module):
    """SE with a hard-sigmoid gate and no BN; the reduced width is rounded to a multiple of 4."""

    def __init__(self, in_chs: int, se_ratio: float = 0.25, divisor: int = 4) -> None:
        super().__init__()
        reduced_chs = make_divisible(in_chs * se_ratio, divisor)
        self.conv_reduce = nn.Conv2d(in_chs, reduced_chs, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced_chs, in_chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.conv_expand(self.act1(self.conv_reduce(F.adaptive_avg_pool2d(x, 1))))
        return x * hard_sigmoid(gate)


class ConvBnAct(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


class GhostModule(nn.Module):
    """A thin 1x1 conv makes `oup / ratio` "intrinsic" maps; a depthwise 3x3 derives the other (ghost) maps."""

    def __init__(
        self,
        inp: int,
        oup: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2, groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        # The slice only matters when ceil(oup / ratio) * ratio > oup (never for ratio 2 and widths divisible by 4).
        return torch.cat([x1, x2], dim=1)[:, : self.oup]


class GhostBottleneck(nn.Module):
    """ghost1 (expand, ReLU) -> [depthwise stride-2 conv + BN] -> [SE] -> ghost2 (linear) + shortcut; no final act."""

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        self.stride = stride
        padding = (dw_kernel_size - 1) // 2
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride, padding, groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio=se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride, padding, groups=in_chs, bias=False),
                nn.BatchNorm2d(in_chs),
                nn.Conv2d(in_chs, out_chs, 1, bias=False),
                nn.BatchNorm2d(out_chs),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.stride > 1:
            out = self.bn_dw(self.conv_dw(out))
        if self.se is not None:
            out = self.se(out)
        return self.ghost2(out) + self.shortcut(x)


class GhostNet(nn.Module):
    """GhostNet v1. The pool comes before `conv_head` (MobileNetV3 style) and dropout is applied functionally
    to the 1280-d vector just before the classifier, as in the reference; weights keep PyTorch's default init."""

    def __init__(
        self,
        width: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem_chs = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(in_chans, stem_chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.act1 = nn.ReLU(inplace=True)

        stages: list[nn.Module] = []
        prev_chs = stem_chs
        for group in _CFGS:
            layers = []
            for kernel, exp_chs, out_chs, se_ratio, stride in group:
                out_chs = make_divisible(out_chs * width, 4)
                mid_chs = make_divisible(exp_chs * width, 4)
                layers.append(GhostBottleneck(prev_chs, mid_chs, out_chs, kernel, stride, se_ratio=se_ratio))
                prev_chs = out_chs
            stages.append(nn.Sequential(*layers))
        last_chs = make_divisible(_CFGS[-1][-1][1] * width, 4)
        stages.append(nn.Sequential(ConvBnAct(prev_chs, last_chs, 1)))
        self.blocks = nn.Sequential(*stages)

        self.num_features = last_chs
        self.conv_head = nn.Conv2d(last_chs, _HEAD_CHANNELS, 1, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(_HEAD_CHANNELS, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(_HEAD_CHANNELS, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act2(self.conv_head(F.adaptive_avg_pool2d(x, 1))).flatten(1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# The reference's validate.py evaluates with Resize(256) + CenterCrop(224).
_CFG = ModelCfg(crop_pct=0.875, first_conv="conv_stem", classifier="classifier")


@register_model(_CFG)
def ghostnet_050(**kwargs) -> GhostNet:
    return GhostNet(width=0.5, **kwargs)


@register_model(_CFG)
def ghostnet_100(**kwargs) -> GhostNet:
    return GhostNet(width=1.0, **kwargs)


@register_model(_CFG)
def ghostnet_130(**kwargs) -> GhostNet:
    return GhostNet(width=1.3, **kwargs)
