"""ResNet-50 with the Bottleneck Attention Module (Park et al., "BAM: Bottleneck Attention Module", BMVC 2018).

Paper: https://arxiv.org/abs/1807.06514 - reference code: Jongchan/attention-module `MODELS/bam.py` and
`MODELS/model_resnet.py`. BAM sits after layer1, layer2 and layer3. The attention is computed as the code does,
not as the paper writes it: M = 1 + sigmoid(Mc * Ms) (product of the branches, no BN at the end of either), which
is what the released checkpoint (76.86 top-1) and the MindSpore port (77.23) were trained with.

Changes to the reference that keep its numbers: the undefined `gate_activation` line (a NameError) is gone; the
channel gate's `avg_pool2d(x, H)` and the head's fixed `AvgPool2d(7)` become global average pools, equal on the
square maps they were written for, and correct on any other input size. Module names are the reference's (its
backbone names are torchvision's), so the authors' checkpoints and torchvision ResNet-50 weights load as is.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionzoo.models.registry import ModelCfg, register_model
from visionzoo.models.weights import StateDict, count_blocks

logger = logging.getLogger(__name__)

_LAYERS = (3, 4, 6, 3)
_EXPANSION = 4


class ChannelGate(nn.Module):
    """Global average pool -> FC (C -> C/r) -> BN1d -> ReLU -> FC (C/r -> C): one value per channel."""

    def __init__(self, channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction_ratio
        self.gate_c = nn.Sequential()
        self.gate_c.add_module("gate_c_fc_0", nn.Linear(channels, hidden))
        self.gate_c.add_module("gate_c_bn_1", nn.BatchNorm1d(hidden))
        self.gate_c.add_module("gate_c_relu_1", nn.ReLU())
        self.gate_c.add_module("gate_c_fc_final", nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate_c(F.adaptive_avg_pool2d(x, 1).flatten(1))[:, :, None, None]


class SpatialGate(nn.Module):
    """1x1 reduce -> two dilated 3x3 convs (dilation 4, each + BN + ReLU) -> 1x1 to one map: one value per pixel."""

    def __init__(self, channels: int, reduction_ratio: int = 16, dilation_conv_num: int = 2, dilation: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction_ratio
        self.gate_s = nn.Sequential()
        self.gate_s.add_module("gate_s_conv_reduce0", nn.Conv2d(channels, hidden, 1))
        self.gate_s.add_module("gate_s_bn_reduce0", nn.BatchNorm2d(hidden))
        self.gate_s.add_module("gate_s_relu_reduce0", nn.ReLU())
        for i in range(dilation_conv_num):
            conv = nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation)
            self.gate_s.add_module(f"gate_s_conv_di_{i}", conv)
            self.gate_s.add_module(f"gate_s_bn_di_{i}", nn.BatchNorm2d(hidden))
            self.gate_s.add_module(f"gate_s_relu_di_{i}", nn.ReLU())
        self.gate_s.add_module("gate_s_conv_final", nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate_s(x)


class BAM(nn.Module):
    """x * (1 + sigmoid(channel_gate(x) * spatial_gate(x))), the (B, C, 1, 1) and (B, 1, H, W) maps broadcast."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channel_att = ChannelGate(channels)
        self.spatial_att = SpatialGate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + torch.sigmoid(self.channel_att(x) * self.spatial_att(x)))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3), torchvision names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * _EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * _EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """ImageNet ResNet-50, optionally with BAM after layer1-3 (`bam=True`)."""

    def __init__(
        self,
        bam: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 64, _LAYERS[0], stride=1)
        self.bam1 = BAM(256) if bam else None
        self.layer2 = self._make_layer(256, 128, _LAYERS[1], stride=2)
        self.bam2 = BAM(512) if bam else None
        self.layer3 = self._make_layer(512, 256, _LAYERS[2], stride=2)
        self.bam3 = BAM(1024) if bam else None
        self.layer4 = self._make_layer(1024, 512, _LAYERS[3], stride=2)
        self.num_features = 512 * _EXPANSION
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if bam:
            self._init_weights_bam_reference()
        else:
            self._init_weights_torchvision()

    @staticmethod
    def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or inplanes != planes * _EXPANSION:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * _EXPANSION, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * _EXPANSION),
            )
        layers = [Bottleneck(inplanes, planes, stride, downsample)]
        layers += [Bottleneck(planes * _EXPANSION, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights_torchvision(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _init_weights_bam_reference(self) -> None:
        """The reference's init, which matches on state-dict key substrings: weights of keys containing "conv"
        (every conv except `downsample.0`, BAM's spatial convs included) get kaiming-normal fan_out, every bias is
        zeroed, `fc.weight` gets kaiming-normal fan_in; `downsample.0` and the channel-gate FCs keep PyTorch's
        defaults. Its "zero the SpatialGate BN" branch never fires, so all BN weights stay 1."""
        if isinstance(self.fc, nn.Linear):
            nn.init.kaiming_normal_(self.fc.weight)
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and not name.endswith("downsample.0"):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer, bam in ((self.layer1, self.bam1), (self.layer2, self.bam2), (self.layer3, self.bam3)):
            x = layer(x)
            if bam is not None:
                x = bam(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _is_bam_key(key: str) -> bool:
    return key.startswith(("bam1.", "bam2.", "bam3."))


def _filter_checkpoint(state: StateDict, model: nn.Module) -> StateDict:
    """Fill what older or backbone-only checkpoints lack from the model itself.

    A plain ResNet-50 (torchvision layout) loaded into ResNet-50+BAM keeps the BAM modules at their init; that case is
    recognised only when the file holds exactly the backbone, so any other model's file still fails to load.
    """
    own = model.state_dict()
    counters = {k for k in own if k.endswith("num_batches_tracked")}
    backbone = {k for k in own if not _is_bam_key(k)}
    same_shapes = all(state[k].shape == own[k].shape for k in backbone & set(state) if not k.startswith("fc."))
    if getattr(model, "bam1", None) is not None and set(state) - counters == backbone - counters and same_shapes:
        state = {**state, **{k: own[k] for k in own if _is_bam_key(k)}}
        logger.info(
            "loaded a plain ResNet-50 into resnet50_bam: backbone from the file, BAM modules left at their init"
        )
    return state


def resnet_layout(state: StateDict) -> str | None:
    """torchvision's bottleneck ResNets (and ResNet-50+BAM): the depth from layer3's blocks."""
    if "conv1.weight" not in state or "layer4.0.conv3.weight" not in state:
        return None
    depth = {6: "50", 23: "101", 36: "152"}.get(count_blocks(state, "layer3"), "(bottleneck)")
    bam = "+BAM" if any(_is_bam_key(k) for k in state) else ""
    fc = state.get("fc.weight")
    return f"torchvision ResNet-{depth}{bam}" + (f" ({fc.shape[0]} classes)" if fc is not None else "")


# Both references evaluate with Resize(256) + CenterCrop(224).
_CFG = ModelCfg(
    crop_pct=0.875, first_conv="conv1", classifier="fc", checkpoint_filter=_filter_checkpoint, layout_name=resnet_layout
)


@register_model(_CFG)
def resnet50(**kwargs) -> ResNet:
    return ResNet(bam=False, **kwargs)


@register_model(_CFG)
def resnet50_bam(**kwargs) -> ResNet:
    return ResNet(bam=True, **kwargs)
