"""ActivityNet feature loading: the first load (parse every CSV, build the cache) against later loads (open the cache).

The reference parses one CSV per item, every epoch; here that cost is paid once. Usage:
python benchmarks/bench_anet_features.py [--videos 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.report import markdown_table, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--temporal-scale", type=int, default=100)
    parser.add_argument("--feat-dim", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_anet_"))
    os.environ["VISIONZOO_CACHE"] = str(work / "cache")
    from visionzoo.data.activitynet import FEATURE_DIR, ActivityNetFeatures, build_feature_cache
    from visionzoo.data.builtin.anet_demo import make_anet_demo

    try:
        n, scale, dim = args.videos, args.temporal_scale, args.feat_dim
        start = time.perf_counter()
        root = make_anet_demo(work / "data", videos=n, temporal_scale=scale, feat_dim=dim)
        generate_s = time.perf_counter() - start
        csv_mb = sum(p.stat().st_size for p in (root / FEATURE_DIR).iterdir()) / 1e6
        names = sorted(p.stem for p in (root / FEATURE_DIR).iterdir())
        rows = [{"step": "generate demo CSVs (make_anet_demo)", "seconds": generate_s}]

        for workers in (1, os.cpu_count() or 1):
            shutil.rmtree(work / "cache", ignore_errors=True)
            start = time.perf_counter()
            cache_path = build_feature_cache(root / FEATURE_DIR, names, scale, dim, workers=workers)
            label = "serial (the default)" if workers == 1 else f"{workers} processes"
            rows.append(
                {"step": f"first load: parse CSVs + build cache, {label}", "seconds": time.perf_counter() - start}
            )

        for attempt in (1, 2):
            start = time.perf_counter()
            dataset = ActivityNetFeatures(root, "all", temporal_scale=scale, feat_dim=dim)
            opened = time.perf_counter()
            for i in range(len(dataset)):
                dataset[(i, 0)]
            done = time.perf_counter()
            rows.append(
                {"step": f"later load #{attempt}: open cache (annotations, fingerprint)", "seconds": opened - start}
            )
            rows.append({"step": f"later load #{attempt}: open cache + read all items", "seconds": done - start})
        for row in rows:
            row["videos/s"] = f"{n / row['seconds']:,.0f}"
            row["seconds"] = f"{row['seconds']:.2f}"
        cache_mb = cache_path.stat().st_size / 1e6
        body = (
            f"{n} synthetic videos, T={scale}, feat_dim={dim}: {csv_mb:.0f} MB of CSV, a {cache_mb:.0f} MB float32 "
            f"cache. Later loads read the cache through the OS page cache (warm).\n\n" + markdown_table(rows)
        )
        print(body)
        write_section("bench_anet_features", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
