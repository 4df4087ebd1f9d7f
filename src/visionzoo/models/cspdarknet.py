"""CSPDarknet53 (Wang et al., "CSPNet: A New Backbone that can Enhance Learning Capability of CNN", 2020).

Paper: https://arxiv.org/abs/1911.11929 - reference cfg: WongKinYiu/CrossStagePartialNetworks csdarknet53.cfg.
Layout and state-dict names follow timm's `cspdarknet53` (its merged `conv_exp` 1x1 instead of darknet's two
parallel 1x1 convs, LeakyReLU with slope 0.01), so timm's weights load with strict=True.

`small_input=True` adapts it to 32x32 images (CIFAR) by making the first stage keep the resolution, so the
last stage sees 2x2 instead of 1x1 maps; parameters and key names are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from visionzoo.models.registry import ModelCfg, register_model

_STAGES = (  # (out_chs, depth, expand_ratio, bottle_ratio, block_ratio), timm's cspdarknet53 config
    (64, 1, 2.0, 0.5, 1.0),
    (128, 2, 1.0, 1.0, 0.5),
    (256, 8, 1.0, 1.0, 0.5),
    (512, 8, 1.0, 1.0, 0.5),
    (1024, 4, 1.0, 1.0, 0.5),
)


class ConvNormAct(nn.Module):
    """Conv (no bias) + BatchNorm + LeakyReLU(0.01), named `conv` and `bn` as in timm."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.LeakyReLU(0.01, inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DarkBlock(nn.Module):
    """1x1 bottleneck then 3x3, with an identity shortcut and no activation after the add."""

    def __init__(self, in_chs: int, out_chs: int, bottle_ratio: float) -> None:
        super().__init__()
        mid_chs = int(round(out_chs * bottle_ratio))
        self.conv1 = ConvNormAct(in_chs, mid_chs, 1)
        self.conv2 = ConvNormAct(mid_chs, out_chs, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class CrossStage(nn.Module):
    """Downsample, expand, split: one half goes through the blocks, the other crosses; concat and fuse."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        depth: int,
        expand_ratio: float,
        bottle_ratio: float,
        block_ratio: float,
    ) -> None:
        super().__init__()
        self.expand_chs = int(round(out_chs * expand_ratio))
        block_chs = int(round(out_chs * block_ratio))
        half = self.expand_chs // 2
        self.conv_down = ConvNormAct(in_chs, out_chs, 3, stride=stride)
        self.conv_exp = ConvNormAct(out_chs, self.expand_chs, 1)
        self.blocks = nn.Sequential(
            *[DarkBlock(half if i == 0 else block_chs, block_chs, bottle_ratio) for i in range(depth)]
        )
        self.conv_transition_b = ConvNormAct(block_chs, half, 1)
        self.conv_transition = ConvNormAct(self.expand_chs, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_exp(self.conv_down(x))
        cross, block = x.split(self.expand_chs // 2, dim=1)
        block = self.conv_transition_b(self.blocks(block))
        return self.conv_transition(torch.cat([cross, block], dim=1))


class ClassifierHead(nn.Module):
    def __init__(self, in_chs: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)


class CspDarknet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        small_input: bool = False,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvNormAct(in_chans, 32, 3))
        stages, prev_chs = [], 32
        for index, (out_chs, depth, expand, bottle, block) in enumerate(_STAGES):
            stride = 1 if (small_input and index == 0) else 2
            stages.append(CrossStage(prev_chs, out_chs, stride, depth, expand, bottle, block))
            prev_chs = out_chs
        self.stages = nn.Sequential(*stages)
        self.num_features = prev_chs
        self.head = ClassifierHead(prev_chs, num_classes, drop_rate)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        """timm's init: kaiming fan_out convs, N(0, 0.01) classifier, and residual branches start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)
        if zero_init_last:
            for module in self.modules():
                if isinstance(module, DarkBlock):
                    nn.init.zeros_(module.conv2.bn.weight)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = ClassifierHead(self.num_features, num_classes, self.drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(ModelCfg(input_size=(3, 256, 256), crop_pct=0.887, first_conv="stem.conv1.conv", classifier="head.fc"))
def cspdarknet53(**kwargs) -> CspDarknet:
    """timm's configuration: 256x256 ImageNet input, crop 0.887."""
    return CspDarknet(**kwargs)
