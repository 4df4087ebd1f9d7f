"""R(2+1)D (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018).

Paper: https://arxiv.org/abs/1711.11248 - reference code: pytorch/vision `torchvision/models/video/resnet.py`
(`VideoResNet` with `BasicBlock`, `Conv2Plus1D` and `R2Plus1dStem`), whose module names every published file
uses: torchvision's `r2plus1d_18-91a641e6.pth` (Kinetics-400), moabitcoin/ig65m-pytorch's R(2+1)D-34 files and
HumamAlwassel/TSP's `.pth` files (`{"model": {"features." + key, "fc1.*", "fc2.*"}}`, read through
`tsp_checkpoint_filter`). The TSP R(2+1)D-34 on ActivityNet gives the published 512-d ActivityNet features
(one vector per 16 frames at 15 fps) of BMN and ActionFormer.

A (2+1)D convolution is a (1, 3, 3) spatial conv to `midplanes` channels, BN, ReLU, then a (3, 1, 1) temporal
conv, with midplanes = in * out * 27 // (in * 9 + 3 * out) so that it has the parameters of a 3x3x3 conv.
torchvision computes it once per block and uses it for both convs; the Caffe2-trained R(2+1)D-34 weights
(IG65M, and TSP which starts from them) compute it per conv, which differs in the second conv of the first block
of layers 2-4 (288/576/1152 channels, not 230/460/921). Those weights also use Caffe2's BN eps 1e-3.
TSP sets BN momentum 0.9 for them, a training-only setting (and the opposite of Caffe2's meaning), kept at
PyTorch's 0.1 here.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from visionzoo.models.registry import ClipProtocol, ModelCfg, register_model
from visionzoo.models.weights import StateDict, count_blocks

logger = logging.getLogger(__name__)

_WIDTHS = (64, 128, 256, 512)
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


def midplanes(in_planes: int, out_planes: int) -> int:
    """Channels between the spatial and the temporal conv: the parameter count of a full 3x3x3 conv."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


class Conv2Plus1D(nn.Sequential):
    """(1, 3, 3) conv (spatial stride) -> BN -> ReLU -> (3, 1, 1) conv (temporal stride); keys .0, .1, .3."""

    def __init__(self, in_planes: int, out_planes: int, mid: int, stride: int = 1, bn_eps: float = 1e-5) -> None:
        super().__init__(
            nn.Conv3d(in_planes, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid, eps=bn_eps),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """Two (2+1)D convs, each followed by BN (ReLU after the first and after the residual sum)."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        per_conv_midplanes: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        mid1 = midplanes(in_planes, planes)
        mid2 = midplanes(planes, planes) if per_conv_midplanes else mid1
        self.conv1 = nn.Sequential(
            Conv2Plus1D(in_planes, planes, mid1, stride, bn_eps), nn.BatchNorm3d(planes, eps=bn_eps), nn.ReLU(True)
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid2, 1, bn_eps), nn.BatchNorm3d(planes, eps=bn_eps))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm3d(planes, eps=bn_eps)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class VideoResNet(nn.Module):
    """[B, 3, T, H, W] clips -> [B, num_classes] logits (timm API).

    `forward_features` returns the layer4 map [B, 512, T/8, H/16, W/16]; `forward_head(x, pre_logits=True)` its
    global average, the 512-d feature TSP publishes.
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        num_classes: int = 400,
        bn_eps: float = 1e-5,
        per_conv_midplanes: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, _WIDTHS[-1]
        self.stem = nn.Sequential(
            nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(45, eps=bn_eps),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(64, eps=bn_eps),
            nn.ReLU(inplace=True),
        )
        in_planes = 64
        for i, (planes, blocks) in enumerate(zip(_WIDTHS, layers, strict=True)):
            stage = []
            for b in range(blocks):
                stride = 2 if i > 0 and b == 0 else 1
                stage.append(BasicBlock(in_planes, planes, stride, per_conv_midplanes, bn_eps))
                in_planes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's: He fan-out convs, unit BNs, N(0, 0.01) classifier (what training from scratch used)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._init_fc()

    def _init_fc(self) -> None:
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes, self.fc = num_classes, nn.Linear(self.num_features, num_classes)
        self._init_fc()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool3d(x, 1).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def tsp_checkpoint_filter(state: StateDict, model: nn.Module) -> StateDict:
    """TSP's `model` dict: the backbone is under `features.` (its `fc` emptied); its heads `fc`/`fc1`/`fc2`
    classify TSP's own training labels, so they are dropped and the model keeps its fresh `fc`, as TSP's
    extract_features.py does. Any other layout passes unchanged."""
    if not any(k.startswith("features.") for k in state):
        return state
    backbone = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    backbone = {k: v for k, v in backbone.items() if not k.startswith("fc.")}
    heads = sorted({k.split(".")[0] for k in state if not k.startswith("features.")})
    logger.info("TSP checkpoint: loaded its backbone, dropped its heads (%s), kept a fresh fc", ", ".join(heads))
    own = model.state_dict()
    return backbone | {k: own[k] for k in own if k.startswith("fc.")}


def r2plus1d_layout(state: StateDict) -> str | None:
    """torchvision's, IG65M's (Caffe2 midplanes per conv) and TSP's files (backbone under `features.`)."""
    tsp = any(k.startswith("features.") for k in state)
    keys = {k.removeprefix("features."): v for k, v in state.items()}
    if "stem.0.weight" not in keys or "layer2.0.conv2.0.0.weight" not in keys:
        return None
    depth = {2: "18", 6: "34"}.get(count_blocks(keys, "layer3"), f"({count_blocks(keys, 'layer3')} layer3 blocks)")
    if tsp:
        return f"TSP R(2+1)D-{depth}"
    caffe2 = keys["layer2.0.conv2.0.0.weight"].shape[0] == midplanes(128, 128)
    fc = keys.get("fc.weight")
    classes = f" ({fc.shape[0]} classes)" if fc is not None else ""
    return f"{'Caffe2 (IG65M)' if caffe2 else 'torchvision'} R(2+1)D-{depth}{classes}"


# ActivityNet TSP features (HumamAlwassel/TSP extract_features.py): 15 fps, 16-frame clips every 16 frames,
# frames resized to 128 x 171 (bilinear), Kinetics mean/std, centre crop 112.
_TSP = ClipProtocol(
    16, 16, 15.0, (128, 171), 112, KINETICS_MEAN, KINETICS_STD, "rgb", "ActivityNet TSP features (R(2+1)D-34)"
)


def _cfg() -> ModelCfg:
    return ModelCfg(
        task="video_features",
        input_size=(3, _TSP.num_frames, _TSP.crop, _TSP.crop),
        crop_pct=1.0,
        mean=KINETICS_MEAN,
        std=KINETICS_STD,
        first_conv="stem.0",
        classifier="fc",
        checkpoint_filter=tsp_checkpoint_filter,
        protocol=_TSP,
        layout_name=r2plus1d_layout,
    )


@register_model(_cfg())
def r2plus1d_18(**kwargs) -> VideoResNet:
    """torchvision's R(2+1)D-18 (BN eps 1e-5, one midplanes per block): `r2plus1d_18-91a641e6.pth`, TSP's
    r2plus1d_18 files."""
    return VideoResNet((2, 2, 2, 2), **{"bn_eps": 1e-5, "per_conv_midplanes": False} | kwargs)


@register_model(_cfg())
def r2plus1d_34(**kwargs) -> VideoResNet:
    """The Caffe2 R(2+1)D-34 (BN eps 1e-3, midplanes per conv) of IG65M and TSP; `bn_eps=1e-5,
    per_conv_midplanes=False` gives torchvision's layout instead."""
    return VideoResNet((3, 4, 6, 3), **{"bn_eps": 1e-3, "per_conv_midplanes": True} | kwargs)
