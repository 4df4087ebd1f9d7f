"""Literal transcription of the reference ResNet-50 + BAM (Jongchan/attention-module at
459efad0e05ee7dde50c41ca10a3d0800bc3792a: `MODELS/bam.py`, last changed in 3a34385, and `MODELS/model_resnet.py`,
last changed in c06383c).

It is the oracle for `visionzoo.models.resnet_bam` (tests): the channel gate's `avg_pool2d(x, H, stride=H)` (square
maps only), the product `1 + sigmoid(channel * spatial)`, the fixed `AvgPool2d(7)` head (224 input only) and the
init loop over state-dict keys, all as written. Only what cannot run or is not used here is left out:
- `ChannelGate.__init__`'s `self.gate_activation = gate_activation` (an undefined name, NameError; issue #27);
- the CBAM branch (`use_cbam`, `MODELS/cbam.py`) and `BasicBlock` (depth 18/34), which ResNet-50 + BAM never builds;
- `init.kaiming_normal` is spelled `init.kaiming_normal_`: the reference's alias is deprecated, warns and calls it.
Other spellings follow the linter with the same behaviour: f-strings for its `%d` module names, one ternary.
Deliberately shares no code with our model.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

# ---- MODELS/bam.py ----


class Flatten(nn.Module):
    """Reference `bam.Flatten`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class ChannelGate(nn.Module):
    """Reference `bam.ChannelGate`: avg_pool2d over an HxH window, flatten, FC-BN1d-ReLU, FC, expanded to x."""

    def __init__(self, gate_channel: int, reduction_ratio: int = 16, num_layers: int = 1) -> None:
        super().__init__()
        # Deleted: `self.gate_activation = gate_activation` (undefined name, raises NameError; issue #27).
        self.gate_c = nn.Sequential()
        self.gate_c.add_module("flatten", Flatten())
        gate_channels = [gate_channel]
        gate_channels += [gate_channel // reduction_ratio] * num_layers
        gate_channels += [gate_channel]
        for i in range(len(gate_channels) - 2):
            self.gate_c.add_module(f"gate_c_fc_{i}", nn.Linear(gate_channels[i], gate_channels[i + 1]))
            self.gate_c.add_module(f"gate_c_bn_{i + 1}", nn.BatchNorm1d(gate_channels[i + 1]))
            self.gate_c.add_module(f"gate_c_relu_{i + 1}", nn.ReLU())
        self.gate_c.add_module("gate_c_fc_final", nn.Linear(gate_channels[-2], gate_channels[-1]))

    def forward(self, in_tensor: torch.Tensor) -> torch.Tensor:
        avg_pool = F.avg_pool2d(in_tensor, in_tensor.size(2), stride=in_tensor.size(2))
        return self.gate_c(avg_pool).unsqueeze(2).unsqueeze(3).expand_as(in_tensor)


class SpatialGate(nn.Module):
    """Reference `bam.SpatialGate`: 1x1 reduce, dilated 3x3 convs (BN + ReLU each), 1x1 to one map, expanded to x."""

    def __init__(
        self, gate_channel: int, reduction_ratio: int = 16, dilation_conv_num: int = 2, dilation_val: int = 4
    ) -> None:
        super().__init__()
        self.gate_s = nn.Sequential()
        self.gate_s.add_module(
            "gate_s_conv_reduce0", nn.Conv2d(gate_channel, gate_channel // reduction_ratio, kernel_size=1)
        )
        self.gate_s.add_module("gate_s_bn_reduce0", nn.BatchNorm2d(gate_channel // reduction_ratio))
        self.gate_s.add_module("gate_s_relu_reduce0", nn.ReLU())
        for i in range(dilation_conv_num):
            self.gate_s.add_module(
                f"gate_s_conv_di_{i}",
                nn.Conv2d(
                    gate_channel // reduction_ratio,
                    gate_channel // reduction_ratio,
                    kernel_size=3,
                    padding=dilation_val,
                    dilation=dilation_val,
                ),
            )
            self.gate_s.add_module(f"gate_s_bn_di_{i}", nn.BatchNorm2d(gate_channel // reduction_ratio))
            self.gate_s.add_module(f"gate_s_relu_di_{i}", nn.ReLU())
        self.gate_s.add_module("gate_s_conv_final", nn.Conv2d(gate_channel // reduction_ratio, 1, kernel_size=1))

    def forward(self, in_tensor: torch.Tensor) -> torch.Tensor:
        return self.gate_s(in_tensor).expand_as(in_tensor)


class BAM(nn.Module):
    """Reference `bam.BAM`: (1 + sigmoid(channel_att * spatial_att)) * x (the code's product, not the paper's sum)."""

    def __init__(self, gate_channel: int) -> None:
        super().__init__()
        self.channel_att = ChannelGate(gate_channel)
        self.spatial_att = SpatialGate(gate_channel)

    def forward(self, in_tensor: torch.Tensor) -> torch.Tensor:
        att = 1 + F.sigmoid(self.channel_att(in_tensor) * self.spatial_att(in_tensor))
        return att * in_tensor


# ---- MODELS/model_resnet.py ----


class Bottleneck(nn.Module):
    """Reference `model_resnet.Bottleneck` (stride on conv2), without its CBAM option."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            residual = self.downsample(x)

        out += residual
        out = self.relu(out)

        return out


class ResNet(nn.Module):
    """Reference `model_resnet.ResNet(block, layers, network_type, num_classes, att_type)`: BAM after layer1-3."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        network_type: str,
        num_classes: int,
        att_type: str | None = None,
    ) -> None:
        self.inplanes = 64
        super().__init__()
        self.network_type = network_type
        # different model config between ImageNet and CIFAR
        if network_type == "ImageNet":
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.avgpool = nn.AvgPool2d(7)
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)

        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)

        if att_type == "BAM":
            self.bam1 = BAM(64 * block.expansion)
            self.bam2 = BAM(128 * block.expansion)
            self.bam3 = BAM(256 * block.expansion)
        else:
            self.bam1, self.bam2, self.bam3 = None, None, None

        self.layer1 = self._make_layer(block, 64, layers[0], att_type=att_type)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, att_type=att_type)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, att_type=att_type)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, att_type=att_type)

        self.fc = nn.Linear(512 * block.expansion, num_classes)

        init.kaiming_normal_(self.fc.weight)
        for key in self.state_dict():
            if key.split(".")[-1] == "weight":
                if "conv" in key:
                    init.kaiming_normal_(self.state_dict()[key], mode="fan_out")
                if "bn" in key:
                    if "SpatialGate" in key:  # never true: keys hold attribute names, not class names
                        self.state_dict()[key][...] = 0
                    else:
                        self.state_dict()[key][...] = 1
            elif key.split(".")[-1] == "bias":
                self.state_dict()[key][...] = 0

    def _make_layer(
        self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1, att_type: str | None = None
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )

        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))

        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        if self.network_type == "ImageNet":
            x = self.maxpool(x)

        x = self.layer1(x)
        if self.bam1 is not None:
            x = self.bam1(x)

        x = self.layer2(x)
        if self.bam2 is not None:
            x = self.bam2(x)

        x = self.layer3(x)
        if self.bam3 is not None:
            x = self.bam3(x)

        x = self.layer4(x)

        x = self.avgpool(x) if self.network_type == "ImageNet" else F.avg_pool2d(x, 4)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


def ResidualNet(network_type: str, depth: int, num_classes: int, att_type: str | None) -> ResNet:
    """Reference `model_resnet.ResidualNet`, for the Bottleneck depths (50, 101) transcribed here."""
    assert network_type in ["ImageNet", "CIFAR10", "CIFAR100"], "network type should be ImageNet or CIFAR10 / CIFAR100"
    assert depth in [50, 101], "network depth should be 50 or 101 (BasicBlock depths are not transcribed)"

    if depth == 50:
        model = ResNet(Bottleneck, [3, 4, 6, 3], network_type, num_classes, att_type)

    elif depth == 101:
        model = ResNet(Bottleneck, [3, 4, 23, 3], network_type, num_classes, att_type)

    return model
