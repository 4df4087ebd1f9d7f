"""Built-in datasets: written once into the cache folder in a real on-disk format, named by an alias wherever
a recipe takes `--data` (one resolver for every command)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from visionzoo.errors import VisionZooError


@dataclass(frozen=True)
class Builtin:
    data_format: str  # the format it is written in, as the recipe field `data_format` names it
    locate: Callable[..., Path]  # (make: bool, **shape) -> its folder, made first when `make`
    description: str


def _digits(make: bool, **_: object) -> Path:
    from visionzoo.data.builtin.digits import digits_dir

    return digits_dir(make=make)


def _imagefolder_demo(make: bool, **_: object) -> Path:
    from visionzoo.data.builtin.imagefolder_demo import demo_imagefolder_dir

    return demo_imagefolder_dir(make=make)


def _anet_demo(make: bool, temporal_scale: int = 100, feat_dim: int = 400, **_: object) -> Path:
    from visionzoo.data.builtin.anet_demo import demo_data_dir

    return demo_data_dir(temporal_scale=temporal_scale, feat_dim=feat_dim, make=make)


def _thumos_demo(make: bool, feat_dim: int = 2048, **_: object) -> Path:
    from visionzoo.data.builtin.thumos_demo import thumos_demo_dir

    return thumos_demo_dir(feat_dim=feat_dim, make=make)


def _video_demo(make: bool, temporal_scale: int = 100, **_: object) -> Path:
    from visionzoo.data.activitynet import VIDEO_ANNO
    from visionzoo.data.builtin.video_demo import video_demo_dir

    path = video_demo_dir(temporal_scale)
    if make and not (path / VIDEO_ANNO).is_file():
        raise VisionZooError(
            f"{path}: the built-in video-demo features are not made yet; `visionzoo train/eval ... --data video-demo` "
            "makes them (export.feature_extractor.build_video_demo)"
        )
    return path


BUILTIN = {
    "digits": Builtin("cifar10", _digits, "scikit-learn's 1,797 handwritten digits in the CIFAR-10 format"),
    "imagefolder-demo": Builtin("imagefolder", _imagefolder_demo, "generated JPEGs, 10 classes, ImageNet layout"),
    "demo": Builtin("activitynet", _anet_demo, "synthetic ActivityNet-layout BMN features, 600 videos"),
    "thumos-demo": Builtin("thumos14", _thumos_demo, "synthetic THUMOS14-layout snippet features, 60 long videos"),
    "video-demo": Builtin("activitynet", _video_demo, "resnet50 features of 40 synthetic videos (make-video-demo)"),
}


def resolve_data(data: str, data_format: str, make: bool = True, **shape: object) -> Path:
    """The folder `--data` names: a built-in alias (made on first use unless `make` is False) or a path.

    `shape` are the options a generator takes (BMN's temporal_scale and feat_dim); others ignore them.
    """
    if data in BUILTIN:
        builtin = BUILTIN[data]
        if builtin.data_format != data_format:
            raise VisionZooError(
                f"--data {data}: built-in {builtin.data_format} data, but the recipe reads {data_format}"
            )
        return builtin.locate(make, **shape)
    if not data:
        aliases = ", ".join(name for name, b in BUILTIN.items() if b.data_format == data_format)
        raise VisionZooError(f"--data: give a dataset folder (or a built-in one: {aliases or 'none'})")
    return Path(data)
