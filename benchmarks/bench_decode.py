"""Decode + augment speed of one loader worker: images/s of the image-folder transforms, single process.

Generated JPEGs with photo-like detail (multi-octave noise, quality 90) at ImageNet's typical 500x375 and
at 2000x1500, where decoding at reduced scale (`Image.draft`) matters; output 224x224 uint8 tensors.
Rows: decode only (Image.open + convert RGB, the floor), the training transform (RandomResizedCrop +
flip, with and without colour jitter 0.4) and the evaluation transform (resize 256 + centre crop 224).

--video SECONDS instead compares the decoding of a generated 1280x720 H.264 video with B-frames (30 fps, photo-like
detail panning: `bench_video_features.make_video`) for resnet50's centre frames (16-frame snippets, 224 px) and
R(2+1)D's TSP grid (15 fps, 128x171): every frame decoded against the non-reference frames no pick needs skipped
(`data.video.PickedFrames`), CPU seconds of one process with one decoder thread, alternated, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from visionzoo.data.transforms import EvalTransform, TrainTransform, input_geometry, open_image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/bench_decode.py` from anywhere
from benchmarks.report import markdown_table, write_section  # noqa: E402


def photo_like(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Noise summed over octaves: JPEG sizes near real photos' (entropy decoding is most of the cost)."""
    image = np.full((height, width, 3), 128.0, dtype=np.float32)
    for cells, spread in ((8, 50.0), (32, 30.0), (128, 20.0), (400, 15.0)):
        coarse = np.clip(
            rng.normal(128, spread, (max(2, height * cells // 1000), max(2, width * cells // 1000), 3)), 0, 255
        )
        image += np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)) - 128.0
    image += rng.normal(0, 10.0, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def make_jpegs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{width}x{height}_{i}.jpg"
        photo_like(width, height, rng).save(path, quality=90)
        paths.append(path)
    return paths


def images_per_second(
    paths: list[Path], step: Callable[[Path, int], object], min_seconds: float
) -> tuple[float, float]:
    """(images per CPU second of this process, images per wall second): on a shared machine the first is the
    speed of one worker on one free core, the second what this run happened to get."""
    for i, path in enumerate(paths[:4]):  # warm the page cache and Pillow's code paths
        step(path, i)
    done, cpu_start, wall_start = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu_start < min_seconds:
        for path in paths:
            step(path, done)
            done += 1
    return done / (time.process_time() - cpu_start), done / (time.perf_counter() - wall_start)


def run(min_seconds: float) -> list[dict[str, object]]:
    torch.set_num_threads(1)

    def decode_only(path: Path, _: int) -> object:
        with Image.open(path) as image:
            return image.convert("RGB")

    def train(transform: TrainTransform) -> Callable[[Path, int], object]:
        def step(path: Path, i: int) -> object:
            with open_image(path) as image:
                return transform(image, np.random.default_rng(i))

        return step

    def evaluate(transform: EvalTransform) -> Callable[[Path, int], object]:
        def step(path: Path, _: int) -> object:
            with open_image(path) as image:
                return transform(image)

        return step

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height, count in ((500, 375, 48), (2000, 1500, 12)):
            paths = make_jpegs(Path(tmp), count, width, height)
            kbytes = np.mean([p.stat().st_size for p in paths]) / 1024
            cases: list[tuple[str, str, Callable[[Path, int], object]]] = [("decode only", "-", decode_only)]
            for draft in (True, False):
                cases += [
                    ("train: rrc + flip", str(draft), train(TrainTransform(224, draft=draft))),
                    ("train: rrc + flip + jitter 0.4", str(draft), train(TrainTransform(224, jitter=0.4, draft=draft))),
                    ("eval: resize 256 + crop 224", str(draft), evaluate(EvalTransform(224, 0.875, draft=draft))),
                ]
            for name, draft_text, step in cases:
                per_cpu_second, per_wall_second = images_per_second(paths, step, min_seconds)
                rows.append(
                    {
                        "JPEG": f"{width}x{height} (~{kbytes:.0f} KB)",
                        "transform (bilinear, out 224)": name,
                        "draft": draft_text,
                        "images/s (CPU time)": f"{per_cpu_second:.0f}",
                        "ms/image (CPU time)": f"{1000 / per_cpu_second:.2f}",
                        "images/s (wall, this run)": f"{per_wall_second:.0f}",
                    }
                )
                print(rows[-1], flush=True)
    return rows


def video_decoding(seconds: float, repeats: int = 3) -> None:
    """Print CPU seconds per video second of both decodes, each the best of `repeats` alternated runs."""
    from benchmarks.bench_video_features import make_video
    from visionzoo.data.video import SnippetDecoder
    from visionzoo.data.video_clips import GridFrames
    from visionzoo.models.registry import ClipProtocol

    torch.set_num_threads(1)
    prep = {"resize": "eval_crop", "img_size": 224, "crop_pct": 0.875, "interpolation": "bilinear"}
    tsp = ClipProtocol(16, 16, 15.0, (128, 171), 112, (0.5,) * 3, (0.5,) * 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / "pan.mp4", 1280, 720, seconds)
        cases: dict[str, Callable[[bool], SnippetDecoder | GridFrames]] = {
            "resnet50 centre frames": lambda skip: SnippetDecoder(
                path, 16, lambda w, h: input_geometry(prep, w, h), 224, threads=1, skip_unused=skip
            ),
            "r2plus1d_34 TSP grid (15 fps)": lambda skip: GridFrames(path, tsp, threads=1, skip_unused=skip),
        }
        for name, make in cases.items():
            cpu = {True: float("inf"), False: float("inf")}
            decoded = {}
            for _ in range(repeats):
                for skip in (False, True):
                    decoder, begin = make(skip), time.process_time()
                    for _ in decoder:
                        pass
                    cpu[skip], decoded[skip] = min(cpu[skip], time.process_time() - begin), decoder.decoded
            print(
                f"{name}: every frame {cpu[False] / seconds:.3f} CPU s per video s ({decoded[False]} decoded), "
                f"skipping {cpu[True] / seconds:.3f} ({decoded[True]} decoded): {cpu[False] / cpu[True]:.2f}x",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum time per measurement")
    parser.add_argument("--video", type=float, metavar="SECONDS", help="compare video decodes instead (no section)")
    args = parser.parse_args()
    if args.video:
        video_decoding(args.video)
        return
    rows = run(args.seconds)
    body = (
        f"One process, one thread (`torch.set_num_threads(1)`), Pillow {PIL.__version__}; JPEGs generated with "
        f"photo-like detail at quality 90, files read from the page cache. Speeds per CPU second of the process "
        f"are what one loader worker does on a free core (a loader with N workers on N free cores scales about "
        f"linearly); wall-clock speeds depend on what else ran on the machine (load average "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores).\n\n{markdown_table(rows)}"
    )
    write_section("bench_decode", body)


if __name__ == "__main__":
    main()
