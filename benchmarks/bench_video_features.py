"""Speed of `visionzoo features`: video frames decoded and snippets featurised per second, and decode's share.

Usage: python benchmarks/bench_video_features.py [--quick]

A generated 1280x720 H.264 video (30 fps, photo-like detail panning) is read with 16-frame snippets: every frame
is decoded, one per snippet is scaled by FFmpeg to the eval crop and goes through the backbone (batch 32). Rows:
decode only (SnippetDecoder), backbone only (on those frames), and the whole `extract_features` (decode +
backbone + rescale + CSV), for resnet50 and ghostnet_100 at 224 px, in fp32 and in what --amp auto picks.
--quick checks the script on a tiny video without writing the section.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from anywhere
from benchmarks.bench_decode import photo_like  # noqa: E402
from benchmarks.report import markdown_table, write_section  # noqa: E402

SNIPPET = 16


def make_video(path: Path, width: int, height: int, seconds: float) -> Path:
    """Photo-like frames panning across a larger picture, so every frame differs (as in a real video)."""
    from visionzoo.data.video import encoder_available, write_video

    picture = np.asarray(photo_like(width * 2, height, np.random.default_rng(0)))
    frames = int(seconds * 30)
    pan = (np.arange(frames) * (width / frames)).astype(int)
    codec = "libx264" if encoder_available("libx264") else "mpeg4"
    return write_video(path, (picture[:, x : x + width] for x in pan), 30.0, codec)


def measure(video: Path, backbone: str, amp: str, out: Path) -> dict[str, object]:
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.data.transforms import input_geometry
    from visionzoo.data.video import SnippetDecoder
    from visionzoo.engine.flops import count_macs
    from visionzoo.engine.hardware import peak_flops
    from visionzoo.engine.precision import compute_dtype
    from visionzoo.export.feature_extractor import ExtractionSettings, extract_features, load_featurizer

    featurizer = load_featurizer(ExtractionSettings(backbone, img_size=224, snippet_frames=SNIPPET, amp=amp))
    prep = featurizer.preprocessing
    begin = time.perf_counter()
    decoder = SnippetDecoder(video, SNIPPET, lambda w, h: input_geometry(prep, w, h), 224, prep["interpolation"])
    frames = np.stack(list(decoder))
    decode_s = time.perf_counter() - begin
    featurizer(frames[:2])  # warm-up
    begin = time.perf_counter()
    for i in range(0, len(frames), 32):
        featurizer(frames[i : i + 32])
    backbone_s = time.perf_counter() - begin
    folder = FeatureFolder(out / f"{backbone}-{amp}", featurizer.spec())
    begin = time.perf_counter()
    extract_features([(video.stem, video)], folder, featurizer)
    total_s = time.perf_counter() - begin
    decoded = decoder.meta.frames
    flops = 2 * count_macs(featurizer.model, torch.zeros(1, 3, 224, 224))
    peak = peak_flops(compute_dtype(featurizer.precision.resolved), torch.device("cpu"))["peak"]
    return {
        "backbone": backbone,
        "amp": featurizer.precision.resolved,
        "decode: frames/s": f"{decoded / decode_s:.0f}",
        "backbone: snippets/s": f"{len(frames) / backbone_s:.1f}",
        "backbone MFU": f"{100 * flops * len(frames) / backbone_s / peak:.1f} %",
        "features: frames/s (video s/s)": f"{decoded / total_s:.0f} ({decoded / 30 / total_s:.1f})",
        "decode share": f"{decode_s / (decode_s + backbone_s):.0%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not a measurement")
    args = parser.parse_args()
    from visionzoo.engine.hardware import machine

    width, height, seconds = (160, 96, 2.0) if args.quick else (1280, 720, 20.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "clip.mp4", width, height, seconds)
        for backbone in ("resnet50", "ghostnet_100"):
            for amp in ("off", "auto"):
                rows.append(measure(video, backbone, amp, Path(tmp)))
                print(rows[-1], flush=True)
    body = (
        f"{machine().describe()}; torch threads {torch.get_num_threads()}, FFmpeg decoder threads auto. One "
        f"{width}x{height} H.264 video, 30 fps, {seconds:g} s; 16-frame snippets (one frame in 16 goes through the "
        f"backbone at 224 px), batch 32. Backbone MFU: its forward FLOPs x snippets/s over this machine's "
        f"measured peak for the dtype.\n\n{markdown_table(rows)}"
    )
    if not args.quick:
        write_section("bench_video_features", body)
    print(body)


if __name__ == "__main__":
    main()
