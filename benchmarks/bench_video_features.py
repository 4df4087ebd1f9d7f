"""Speed of `visionzoo features` per backbone: seconds of video per second, and where the time goes.

Usage: python benchmarks/bench_video_features.py [--quick]

A generated 1280x720 H.264 video (30 fps, photo-like detail panning, 20 s) through each backbone: resnet50 (the
centre frame of 16-frame snippets, 224 px), i3d_rgb, two-stream i3d (when OpenCV's contrib build is there),
r2plus1d_34 (at their published protocols) and a tiny VideoMAE folder (2 layers, 64-d, 16 frames of 224 px:
the cost of the clip pipeline around a small transformer). Columns: the whole `extract_features` as video
seconds per second; the inputs (decode, scale, cut and normalise clips, flow: the backbone's dataset), of which
the TV-L1 flow of the grid frames (timed alone), the network on the prepared inputs, each as seconds per video
second; the network's MFU
(its forward FLOPs x items/s over this machine's measured peak for the dtype). --quick checks the script on a
tiny video with 32 px crops and writes no section.
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
from visionzoo.errors import VisionZooError  # noqa: E402
from visionzoo.export.feature_extractor import Featurizer, SnippetFeaturizer  # noqa: E402

FPS = 30.0
BASELINE = "2d2e4b3"  # main when issue 23 (features twice as fast) was filed
ROOT = Path(__file__).resolve().parent.parent


def make_video(path: Path, width: int, height: int, seconds: float) -> Path:
    """Photo-like frames panning across a larger picture, so every frame differs (as in a real video)."""
    from visionzoo.data.video import encoder_available, write_video

    picture = np.asarray(photo_like(width * 2, height, np.random.default_rng(0)))
    frames = int(seconds * FPS)
    pan = (np.arange(frames) * (width / frames)).astype(int)
    codec = "libx264" if encoder_available("libx264") else "mpeg4"
    return write_video(path, (picture[:, x : x + width] for x in pan), FPS, codec)


def _inputs(featurizer: Featurizer, video: Path) -> tuple[np.ndarray, float]:
    """The backbone's prepared inputs of the whole video (frames or clips) and the seconds it took."""
    begin = time.perf_counter()
    parts = [array for _, array, _ in featurizer.dataset([(video.stem, video)]) if len(array)]
    return np.concatenate(parts), time.perf_counter() - begin


def _flow_seconds(featurizer: Featurizer, video: Path) -> float:
    """TV-L1 between every pair of consecutive grid frames (what a flow stream computes), timed alone."""
    from visionzoo.data.optical_flow import tvl1_flow
    from visionzoo.data.video_clips import GridFrames

    protocols = getattr(featurizer, "protocols", ())
    if not any(p.modality == "flow" for p in protocols):
        return 0.0
    frames = np.stack(list(GridFrames(video, protocols[0])))
    begin = time.perf_counter()
    for i in range(len(frames) - 1):
        tvl1_flow(frames[i : i + 2])
    return time.perf_counter() - begin


def _macs_per_item(featurizer: Featurizer, item: np.ndarray) -> int:
    from visionzoo.engine.flops import count_macs

    if isinstance(featurizer, SnippetFeaturizer):
        return count_macs(featurizer.model, torch.zeros(1, 3, *item.shape[:2]))
    channel, macs = 0, 0
    for model, protocol in zip(featurizer.models, featurizer.protocols, strict=True):
        part = torch.from_numpy(item[None, channel : channel + len(protocol.mean)])
        channel += len(protocol.mean)
        macs += count_macs(model, part)
    return macs


def measure(video: Path, backbone: str, amp: str, runtime: str, img_size: int | None, out: Path) -> dict[str, object]:
    from visionzoo.data.feature_folder import FeatureFolder
    from visionzoo.engine.hardware import peak_flops
    from visionzoo.engine.precision import compute_dtype
    from visionzoo.export.feature_extractor import ExtractionSettings, extract_features, load_featurizer

    batch = 32 if backbone == "resnet50" else 4
    settings = ExtractionSettings(
        backbone, img_size=img_size, amp=amp, runtime=runtime, batch_size=batch, layout="snippets"
    )
    featurizer = load_featurizer(settings)
    inputs, inputs_s = _inputs(featurizer, video)
    flow_s = _flow_seconds(featurizer, video)
    featurizer(inputs[:1])  # warm-up
    begin = time.perf_counter()
    for i in range(0, len(inputs), batch):
        featurizer(inputs[i : i + batch])
    network_s = time.perf_counter() - begin
    folder = FeatureFolder(out / f"{backbone.split(':')[0]}-{amp}-{runtime}", featurizer.spec())
    report = extract_features([(video.stem, video)], folder, featurizer)
    seconds = report.frames / FPS
    flops = 2 * _macs_per_item(featurizer, inputs[0])
    ran, dtype = featurizer.network.describe().split()
    peak = peak_flops(compute_dtype(dtype), torch.device("cpu"))["peak"]
    return {
        "backbone": backbone.split(":")[0],
        "runtime": f"{runtime}: {ran}" if runtime == "auto" else ran,
        "dtype": dtype,
        "items": f"{len(inputs)} {'frames' if isinstance(featurizer, SnippetFeaturizer) else 'clips'}",
        "video s/s": f"{seconds / report.seconds:.3f}",
        "inputs s/video s": f"{inputs_s / seconds:.3f}",
        "of which flow": f"{flow_s / seconds:.3f}",
        "network s/video s": f"{network_s / seconds:.3f}",
        "network MFU": f"{100 * flops * len(inputs) / network_s / peak:.1f} %",
    }


def _cli_seconds(source: Path, video: Path, out: Path, *options: str) -> float:
    """Wall seconds of `visionzoo features VIDEO --backbone resnet50 --amp bf16` run from the tree at `source`."""
    import os
    import shutil
    import subprocess

    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "visionzoo", "features", str(video), "--backbone", "resnet50", "--amp", "bf16"]
    environment = os.environ | {"PYTHONPATH": str(source / "src")}
    begin = time.perf_counter()
    subprocess.run([*argv, "--output", str(out), *options], check=True, env=environment, capture_output=True)
    return time.perf_counter() - begin


def against_before(commit: str, video: Path, short: Path, seconds: float, tmp: Path) -> list[dict[str, object]]:
    """The command at `commit` (a git worktree) and now, on a long and a short video: video seconds per second."""
    import subprocess

    before = tmp / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), commit], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    runs = {f"{commit} (before)": (before, ()), "now, --runtime torch": (ROOT, ("--runtime", "torch")),
            "now (--runtime auto)": (ROOT, ())}  # fmt: skip
    rows, base = [], None
    try:
        for name, (source, options) in runs.items():
            _cli_seconds(source, short, tmp / "warm", *options)  # converts once (cached), warms the page cache
            long_s = min(_cli_seconds(source, video, tmp / "long", *options) for _ in range(2))  # the best of 2
            short_s = min(_cli_seconds(source, short, tmp / "short", *options) for _ in range(2))
            rate = (seconds - 2.0) / (long_s - short_s)
            base = base or rate
            rows.append({"code": name, f"{seconds:g} s video (wall s)": f"{long_s:.2f}", "2 s video (wall s)":
                         f"{short_s:.2f}", "video s/s": f"{rate:.2f}", "vs before": f"{rate / base:.2f}x"})  # fmt: skip
            print(rows[-1], flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    return rows


def tiny_videomae(folder: Path, size: int, frames: int) -> str:
    """A random VideoMAE folder (2 layers, 64-d) as `save_pretrained` writes it: `videomae:DIR`."""
    import transformers

    config = transformers.VideoMAEConfig(image_size=size, patch_size=16, num_frames=frames, tubelet_size=2,
                                         hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=128)  # fmt: skip
    transformers.VideoMAEModel(config).save_pretrained(folder)
    return f"videomae:{folder}"


def backbones(tmp: Path, quick: bool) -> list[str]:
    """The backbones this machine can run: two-stream I3D needs cv2.optflow, VideoMAE transformers."""
    import importlib.util

    names = ["resnet50", "i3d_rgb"]
    try:
        from visionzoo.data.optical_flow import require_optflow

        require_optflow()
        names.append("i3d")
    except VisionZooError as err:
        print(f"skipping two-stream i3d: {err}")
    names.append("r2plus1d_34")
    if importlib.util.find_spec("transformers") is not None:
        names.append(tiny_videomae(tmp / "videomae", 32 if quick else 224, 4 if quick else 16))
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not a measurement")
    parser.add_argument("--only", nargs="+", help="measure these backbones only (resnet50, i3d_rgb, i3d, r2plus1d_34)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated video")
    parser.add_argument("--before", default=BASELINE, help="the commit the command is compared with ('' for none)")
    parser.add_argument("--before-seconds", type=float, default=60.0, help="the video the command runs on")
    args = parser.parse_args()
    from visionzoo.engine.hardware import machine

    width, height, seconds = (160, 96, 2.0) if args.quick else (1280, 720, args.seconds)
    img_size = 32 if args.quick else None  # None: each backbone's own (its published protocol)
    size = "32 px crops (--quick)" if args.quick else "each backbone's published protocol"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "clip.mp4", width, height, seconds)
        chosen = [b for b in backbones(Path(tmp), args.quick) if not args.only or b in args.only]
        for backbone in chosen:
            for amp, runtime in (("off", "torch"), ("auto", "torch"), ("auto", "auto")):
                rows.append(measure(video, backbone, amp, runtime, img_size, Path(tmp)))
                print(rows[-1], flush=True)
        if not args.quick and args.before:
            long = make_video(Path(tmp) / "long.mp4", width, height, args.before_seconds)
            short = make_video(Path(tmp) / "short.mp4", width, height, 2.0)
            before_rows = against_before(args.before, long, short, args.before_seconds, Path(tmp))
    body = (
        f"{machine().describe()}; torch threads {torch.get_num_threads()}, FFmpeg decoder threads auto. One "
        f"{width}x{height} H.264 video, {FPS:g} fps, {seconds:g} s, at {size} (resnet50: the centre frame of "
        f"16-frame snippets, batch 32 frames; clip models batch 4 clips); video s/s is the "
        f"whole extraction, the other columns are seconds spent per second of video.\n\n{markdown_table(rows)}"
    )
    if not args.quick and args.before:
        body += (
            f"\n\nThe `visionzoo features` command as a user runs it, `--backbone resnet50 --amp bf16` (what `auto` "
            f"resolves to on this CPU), at commit {args.before} (main when issue 23 was filed) and now, in one run: "
            f"video s/s = ({args.before_seconds:g} - 2) s of video / (the wall time on a {args.before_seconds:g} s "
            f"video - the wall time on a 2 s one; each the best of 2), so start-up (imports, the model, a cached "
            f"conversion) cancels out. Goal: 2x.\n\n"
            f"{markdown_table(before_rows)}"
        )
    if not args.quick:
        write_section("bench_video_features", body)
    print(body)


if __name__ == "__main__":
    main()
