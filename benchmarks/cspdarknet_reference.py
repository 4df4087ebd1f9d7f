"""Standalone transcription of timm's `cspdarknet53` (huggingface/pytorch-image-models at
aa4b5850c1543fa488abf260f18390eda46cf85d: `timm/models/cspnet.py`, last changed in c0e3d24, with the pieces of
`timm/layers` it builds: `ConvNormAct`, `BatchNormAct2d`, `get_padding`, `ClassifierHead`, `SelectAdaptivePool2d`,
the `leaky_relu` activation entry, and `named_apply` from `timm/models/_manipulate.py`).

It is the oracle for `visionzoo.models.cspdarknet` (tests). Only the path `cspdarknet53` takes is written: stage
type 'csp' (`CrossStage`) with block type 'dark' (`DarkBlock`), output stride 32, no attention, no anti-aliasing,
no avg-down, no dilation, no drop path, no feature-extraction wrapper; each of those is a branch timm does not
enter for this model. What is kept: the config as timm writes it (padded per stage), the merged `conv_exp` 1x1
split into [cross, block] halves, `BatchNormAct2d` (a BatchNorm2d subclass that holds the activation, so the
keys are `conv`/`bn`), LeakyReLU with PyTorch's default slope 0.01, the head (adaptive avg pool, flatten,
dropout, fc) and timm's init with zero-init of each DarkBlock's last BN weight. Deliberately shares no code with
our model. Lint-only spellings (ternaries in the BN forward, `zip(..., strict=True)`) keep timm's behaviour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- timm/layers: the pieces ConvNormAct and ClassifierHead use for this model ----

_ACT_LAYER_DEFAULT = dict(leaky_relu=nn.LeakyReLU)  # timm/layers/create_act.py, the one entry used here


def create_act_layer(name: str, inplace: bool | None = None) -> nn.Module:
    """timm `create_act_layer` for a name whose layer takes `inplace` (LeakyReLU keeps its default slope 0.01)."""
    act_layer = _ACT_LAYER_DEFAULT[name.lower()]
    if inplace is None:
        return act_layer()
    return act_layer(inplace=inplace)


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """timm `get_padding`: symmetric padding (what the default `padding=''` resolves to)."""
    padding = ((stride - 1) + dilation * (kernel_size - 1)) // 2
    return padding


class BatchNormAct2d(nn.BatchNorm2d):
    """timm `BatchNormAct2d`: BatchNorm2d + drop (Identity) + activation, inheriting from BN for its key names."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        apply_act: bool = True,
        act_layer: str = "leaky_relu",
        inplace: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats
        )
        self.drop = nn.Identity()
        self.act = create_act_layer(act_layer, inplace=inplace) if apply_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, f"expected 4D input (got {x.ndim}D input)"
        exponential_average_factor = 0.0 if self.momentum is None else self.momentum

        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # use cumulative moving average
                exponential_average_factor = 1.0 / float(self.num_batches_tracked)
            else:  # use exponential moving average
                exponential_average_factor = self.momentum

        # Mini-batch stats in training, and in eval when there are no running buffers.
        bn_training = True if self.training else (self.running_mean is None) and (self.running_var is None)

        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            bn_training,
            exponential_average_factor,
            self.eps,
        )
        x = self.drop(x)
        x = self.act(x)
        return x


class ConvNormAct(nn.Module):
    """timm `ConvNormAct` (conv_bn_act.py): `conv` (no bias, symmetric padding), `bn` (BatchNormAct2d), no aa."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        apply_act: bool = True,
        act_layer: str = "leaky_relu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=get_padding(kernel_size, stride=stride, dilation=dilation),
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        # NOTE for backwards (weight) compatibility, norm layer name remains `.bn` (timm's comment)
        self.bn = BatchNormAct2d(out_channels, apply_act=apply_act, act_layer=act_layer)
        self.aa = None  # create_aa(None, ...) with noop=None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.bn(x)
        if self.aa is not None:
            x = self.aa(x)
        return x


class SelectAdaptivePool2d(nn.Module):
    """timm `SelectAdaptivePool2d(pool_type='avg', flatten=True)`: AdaptiveAvgPool2d(1) then Flatten(1)."""

    def __init__(self, output_size: int = 1, pool_type: str = "avg", flatten: bool = False) -> None:
        super().__init__()
        assert pool_type == "avg"
        self.pool_type = pool_type
        self.pool = nn.AdaptiveAvgPool2d(output_size)
        self.flatten = nn.Flatten(1) if flatten else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        x = self.flatten(x)
        return x


class ClassifierHead(nn.Module):
    """timm `ClassifierHead` (classifier.py) with a Linear fc: global_pool, drop, fc, flatten (Identity)."""

    def __init__(self, in_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes, bias=True) if num_classes > 0 else nn.Identity()
        self.flatten = nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        x = self.drop(x)
        if pre_logits:
            return self.flatten(x)
        x = self.fc(x)
        return self.flatten(x)


def named_apply(fn, module: nn.Module, name: str = "", depth_first: bool = True, include_root: bool = False):
    """timm `named_apply` (_manipulate.py): children first, then the module (depth first)."""
    if not depth_first and include_root:
        fn(module=module, name=name)
    for child_name, child_module in module.named_children():
        child_name = ".".join((name, child_name)) if name else child_name
        named_apply(fn=fn, module=child_module, name=child_name, depth_first=depth_first, include_root=True)
    if depth_first and include_root:
        fn(module=module, name=name)
    return module


# ---- timm/models/cspnet.py ----


@dataclass
class CspStemCfg:
    """timm `CspStemCfg` (padding is always '' here)."""

    out_chs: int | tuple[int, ...] = 32
    stride: int = 2
    kernel_size: int = 3
    pool: str = ""


def _pad_arg(x, n: int) -> tuple:
    # pads an argument tuple to specified n by padding with last value
    if not isinstance(x, (tuple, list)):
        x = (x,)
    curr_n = len(x)
    pad_n = n - curr_n
    if pad_n <= 0:
        return x[:n]
    return tuple(x + (x[-1],) * pad_n)


@dataclass
class CspStagesCfg:
    """timm `CspStagesCfg`, the fields `cspdarknet53` sets or relies on; every per-stage field padded to n stages."""

    depth: tuple[int, ...] = (3, 3, 5, 2)
    out_chs: tuple[int, ...] = (128, 256, 512, 1024)
    stride: int | tuple[int, ...] = 2
    groups: int | tuple[int, ...] = 1
    block_ratio: float | tuple[float, ...] = 1.0
    bottle_ratio: float | tuple[float, ...] = 1.0
    stage_type: str | tuple[str, ...] = "csp"
    block_type: str | tuple[str, ...] = "bottle"
    # cross-stage only
    expand_ratio: float | tuple[float, ...] = 1.0
    cross_linear: bool | tuple[bool, ...] = False
    down_growth: bool | tuple[bool, ...] = False

    def __post_init__(self) -> None:
        n = len(self.depth)
        assert len(self.out_chs) == n
        self.stride = _pad_arg(self.stride, n)
        self.groups = _pad_arg(self.groups, n)
        self.block_ratio = _pad_arg(self.block_ratio, n)
        self.bottle_ratio = _pad_arg(self.bottle_ratio, n)
        self.stage_type = _pad_arg(self.stage_type, n)
        self.block_type = _pad_arg(self.block_type, n)
        self.expand_ratio = _pad_arg(self.expand_ratio, n)
        self.cross_linear = _pad_arg(self.cross_linear, n)
        self.down_growth = _pad_arg(self.down_growth, n)


@dataclass
class CspModelCfg:
    """timm `CspModelCfg` (norm is always 'batchnorm', aa_layer None)."""

    stem: CspStemCfg
    stages: CspStagesCfg
    zero_init_last: bool = True  # zero init last weight (usually bn) in residual path
    act_layer: str = "leaky_relu"


class DarkBlock(nn.Module):
    """timm `DarkBlock`: 1x1 ConvNormAct to mid, (attn Identity), 3x3 ConvNormAct to out, + shortcut, no act after."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        dilation: int = 1,
        bottle_ratio: float = 0.5,
        groups: int = 1,
        act_layer: str = "leaky_relu",
    ) -> None:
        super().__init__()
        mid_chs = int(round(out_chs * bottle_ratio))
        ckwargs = dict(act_layer=act_layer)

        self.conv1 = ConvNormAct(in_chs, mid_chs, kernel_size=1, **ckwargs)
        self.attn = nn.Identity()
        self.conv2 = ConvNormAct(mid_chs, out_chs, kernel_size=3, dilation=dilation, groups=groups, **ckwargs)
        self.drop_path = nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv1(x)
        x = self.attn(x)
        x = self.conv2(x)
        x = self.drop_path(x) + shortcut
        return x


class CrossStage(nn.Module):
    """timm `CrossStage`: conv_down (3x3 s2), merged conv_exp 1x1, split [xs, xb], blocks on xb,
    conv_transition_b, cat([xs, xb]), conv_transition."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        dilation: int,
        depth: int,
        block_ratio: float = 1.0,
        bottle_ratio: float = 1.0,
        expand_ratio: float = 1.0,
        groups: int = 1,
        first_dilation: int | None = None,
        down_growth: bool = False,
        cross_linear: bool = False,
        block_fn: type[nn.Module] = DarkBlock,
        act_layer: str = "leaky_relu",
    ) -> None:
        super().__init__()
        first_dilation = first_dilation or dilation
        down_chs = out_chs if down_growth else in_chs  # grow downsample channels to output channels
        self.expand_chs = exp_chs = int(round(out_chs * expand_ratio))
        block_out_chs = int(round(out_chs * block_ratio))
        conv_kwargs = dict(act_layer=act_layer)

        if stride != 1 or first_dilation != dilation:
            self.conv_down = ConvNormAct(
                in_chs, down_chs, kernel_size=3, stride=stride, dilation=first_dilation, groups=groups, **conv_kwargs
            )
            prev_chs = down_chs
        else:
            self.conv_down = nn.Identity()
            prev_chs = in_chs

        self.conv_exp = ConvNormAct(prev_chs, exp_chs, kernel_size=1, apply_act=not cross_linear, **conv_kwargs)
        prev_chs = exp_chs // 2  # output of conv_exp is always split in two

        self.blocks = nn.Sequential()
        for i in range(depth):
            self.blocks.add_module(
                str(i),
                block_fn(
                    in_chs=prev_chs,
                    out_chs=block_out_chs,
                    dilation=dilation,
                    bottle_ratio=bottle_ratio,
                    groups=groups,
                    act_layer=act_layer,
                ),
            )
            prev_chs = block_out_chs

        # transition convs
        self.conv_transition_b = ConvNormAct(prev_chs, exp_chs // 2, kernel_size=1, **conv_kwargs)
        self.conv_transition = ConvNormAct(exp_chs, out_chs, kernel_size=1, **conv_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_down(x)
        x = self.conv_exp(x)
        xs, xb = x.split(self.expand_chs // 2, dim=1)
        xb = self.blocks(xb)
        xb = self.conv_transition_b(xb).contiguous()
        out = self.conv_transition(torch.cat([xs, xb], dim=1))
        return out


def create_csp_stem(
    in_chans: int = 3,
    out_chs: int | tuple[int, ...] = 32,
    kernel_size: int = 3,
    stride: int = 2,
    pool: str = "",
    act_layer: str = "leaky_relu",
) -> tuple[nn.Sequential, list[dict]]:
    """timm `create_csp_stem`, without the max-pool branch (`pool=''` for cspdarknet53)."""
    stem = nn.Sequential()
    feature_info = []
    if not isinstance(out_chs, (tuple, list)):
        out_chs = [out_chs]
    stem_depth = len(out_chs)
    assert stem_depth
    assert stride in (1, 2, 4)
    assert not pool
    prev_feat = None
    prev_chs = in_chans
    last_idx = stem_depth - 1
    stem_stride = 1
    for i, chs in enumerate(out_chs):
        conv_name = f"conv{i + 1}"
        conv_stride = 2 if (i == 0 and stride > 1) or (i == last_idx and stride > 2 and not pool) else 1
        if conv_stride > 1 and prev_feat is not None:
            feature_info.append(prev_feat)
        stem.add_module(conv_name, ConvNormAct(prev_chs, chs, kernel_size, stride=conv_stride, act_layer=act_layer))
        stem_stride *= conv_stride
        prev_chs = chs
        prev_feat = dict(num_chs=prev_chs, reduction=stem_stride, module=".".join(["stem", conv_name]))
    feature_info.append(prev_feat)
    return stem, feature_info


def create_csp_stages(cfg: CspModelCfg, stem_feat: dict) -> tuple[nn.Sequential, list[dict]]:
    """timm `create_csp_stages` for output_stride 32 and drop_path_rate 0 (dilation stays 1)."""
    cfg_dict = asdict(cfg.stages)
    stage_args = [dict(zip(cfg_dict.keys(), values, strict=True)) for values in zip(*cfg_dict.values(), strict=True)]

    dilation = 1
    net_stride = stem_feat["reduction"]
    prev_chs = stem_feat["num_chs"]
    prev_feat = stem_feat
    feature_info = []
    stages = []
    for stage_idx, args in enumerate(stage_args):
        stage_type, block_type = args.pop("stage_type"), args.pop("block_type")
        assert (stage_type, block_type) == ("csp", "dark"), "only CrossStage + DarkBlock are transcribed"
        stride = args.pop("stride")
        if stride != 1 and prev_feat:
            feature_info.append(prev_feat)
        net_stride *= stride
        first_dilation = 1 if dilation in (1, 2) else 2

        stages += [
            CrossStage(
                prev_chs,
                **args,
                stride=stride,
                first_dilation=first_dilation,
                dilation=dilation,
                block_fn=DarkBlock,
                act_layer=cfg.act_layer,
            )
        ]
        prev_chs = args["out_chs"]
        prev_feat = dict(num_chs=prev_chs, reduction=net_stride, module=f"stages.{stage_idx}")

    feature_info.append(prev_feat)
    return nn.Sequential(*stages), feature_info


def _init_weights(module: nn.Module, name: str, zero_init_last: bool = False) -> None:
    """timm cspnet `_init_weights`: kaiming-normal fan_out convs, N(0, 0.01) Linear, zero-init last BN weights."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif zero_init_last and hasattr(module, "zero_init_last"):
        module.zero_init_last()


class CspNet(nn.Module):
    """timm `CspNet`: stem, stages, head; `forward_features` / `forward_head` as in timm."""

    def __init__(
        self,
        cfg: CspModelCfg,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.feature_info = []

        # Construct the stem
        self.stem, stem_feat_info = create_csp_stem(in_chans, **asdict(cfg.stem), act_layer=cfg.act_layer)
        self.feature_info.extend(stem_feat_info[:-1])

        # Construct the stages
        self.stages, stage_feat_info = create_csp_stages(cfg, stem_feat=stem_feat_info[-1])
        prev_chs = stage_feat_info[-1]["num_chs"]
        self.feature_info.extend(stage_feat_info)

        # Construct the head
        self.num_features = self.head_hidden_size = prev_chs
        self.head = ClassifierHead(
            in_features=prev_chs, num_classes=num_classes, pool_type=global_pool, drop_rate=drop_rate
        )

        named_apply(partial(_init_weights, zero_init_last=zero_init_last), self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x


model_cfgs = dict(
    cspdarknet53=CspModelCfg(
        stem=CspStemCfg(out_chs=32, kernel_size=3, stride=1, pool=""),
        stages=CspStagesCfg(
            depth=(1, 2, 8, 8, 4),
            out_chs=(64, 128, 256, 512, 1024),
            stride=2,
            expand_ratio=(2.0,) + (1.0,),
            bottle_ratio=(0.5,) + (1.0,),
            block_ratio=(1.0,) + (0.5,),
            down_growth=True,
            block_type="dark",
        ),
    ),
)


def cspdarknet53(**kwargs) -> CspNet:
    """timm `cspdarknet53` (pretrained=False): CspNet(model_cfgs['cspdarknet53'], **kwargs)."""
    return CspNet(model_cfgs["cspdarknet53"], **kwargs)
