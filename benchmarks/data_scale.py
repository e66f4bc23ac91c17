"""Your own images at scale: decoding a folder once, starting from the cache, and training from
device memory against reading each batch from the on-disk cache.

What it does, in order, with a fresh $GENTK_HOME:

1. builds (or reuses, with --folder) a synthetic RGB folder: --images PNGs of --size x --size
   pixels in 10 class folders (smooth colour fields with a class-coloured square, so PNG
   compresses them about as it does photos of that size);
2. first start: a new process lists the folder, reads the headers and decodes every image
   into the cache (fitted to --image-size); its wall time and peak RSS;
3. second start: another new process does the same and finds the cache (lists the folder,
   checks every chunk's sha256); its wall time and peak RSS;
4. training: `gentk.train(MODEL)` for --steps steps, alternately with the data on the device
   (the default) and with --max-data-memory 0 (every batch read from the cache), --rounds
   times each, each in its own process; images/s is the median of the metrics.jsonl windows
   after the first (warm-up), and the ratio is disk / memory within the same round pair.

Usage: python benchmarks/data_scale.py [--images 50000] [--size 64] [--image-size 64] [--model gan]
       [--steps 60] [--rounds 2] [--folder PATH] [--keep]
Prints a table and appends one JSON row to benchmarks/results/data_scale.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe  # this folder's machine.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "data_scale.jsonl"

START = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from gentk.data import load_dataset
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # torch alone is ~0.5 GB
ds = load_dataset(sys.argv[1])
fitted = ds.fitted(int(sys.argv[2]), ds.channels, "crop", progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "note": fitted.note, "images": len(fitted.train),
                  "decoded_bytes": fitted.nbytes, "import_rss_bytes": imported,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

TRAIN = r"""
import json, resource, statistics, sys
from gentk.engine import train
model, data, run, size, steps, limit = sys.argv[1:7]
train(model, run, data=data, image_size=int(size), max_steps=int(steps), epochs=1000, batch_size=128,
      log_every=10, sample_every=10**6, checkpoint_every=10**6, device="cpu", progress=False,
      max_data_memory=None if limit == "default" else limit)
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
speeds = [r["images_per_sec"] for r in rows if "images_per_sec" in r][1:]
print(json.dumps({"images_per_sec": statistics.median(speeds), "windows": len(speeds),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def make_folder(folder: Path, images: int, size: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (10, 3))
    grid = np.linspace(0, 1, size)[None, :, None]
    for k in range(10):
        (folder / f"class{k}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        k = i % 10
        base = rng.integers(0, 256, (2, 3))
        pixels = base[0] + (base[1] - base[0]) * grid * np.ones((size, 1, 1))
        x, y = rng.integers(0, size // 2, 2)
        pixels[y:y + size // 3, x:x + size // 3] = colours[k]
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"class{k}" / f"{i:06d}.png")
        if i and i % 10000 == 0:
            print(f"  made {i} images", flush=True)


def run_json(script: str, *args, env) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--size", type=int, default=64, help="pixels a side of the generated images")
    ap.add_argument("--image-size", type=int, default=64, help="the model's --image-size")
    ap.add_argument("--model", default="gan")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--folder", type=Path, help="an existing folder to use instead of generating one")
    ap.add_argument("--keep", action="store_true", help="keep the generated folder and cache")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gentk-data-scale-"))
    folder = args.folder or work / "images"
    if args.folder is None:
        t = time.perf_counter()
        print(f"making {args.images} {args.size}x{args.size} RGB images in {folder} ...", flush=True)
        make_folder(folder, args.images, args.size)
        print(f"  {time.perf_counter() - t:.1f} s", flush=True)
    env = dict(os.environ, GENTK_HOME=str(work / "home"), PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]))
    data = f"folder:{folder}"
    first = run_json(START, data, args.image_size, env=env)
    second = run_json(START, data, args.image_size, env=env)
    assert "from cache" in second["note"], second["note"]
    print(f"first start (list, headers, decode): {first['seconds']:.1f} s, peak RSS "
          f"{first['peak_rss_bytes'] / 2**20:.0f} MiB; second start (from cache): {second['seconds']:.2f} s, "
          f"peak RSS {second['peak_rss_bytes'] / 2**20:.0f} MiB; decoded {first['decoded_bytes'] / 2**20:.0f} MiB; "
          f"RSS after importing gentk (before any data) {first['import_rss_bytes'] / 2**20:.0f} MiB",
          flush=True)
    rounds = []
    for r in range(args.rounds):
        pair = {}
        for mode, limit in (("memory", "default"), ("disk", "0")):
            pair[mode] = run_json(TRAIN, args.model, data, work / f"run-{mode}-{r}", args.image_size, args.steps,
                                  limit, env=env)
            print(f"  round {r + 1} {mode}: {pair[mode]['images_per_sec']:.1f} img/s, peak RSS "
                  f"{pair[mode]['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
        pair["ratio"] = pair["disk"]["images_per_sec"] / pair["memory"]["images_per_sec"]
        rounds.append(pair)
    ratios = [p["ratio"] for p in rounds]
    row = {
        "benchmark": "data_scale", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": describe(),
        "images": args.images, "source_size": args.size, "image_size": args.image_size, "model": args.model,
        "decoded_mib": round(first["decoded_bytes"] / 2**20, 1),
        "first_start_s": round(first["seconds"], 2), "first_start_peak_rss_mib": round(first["peak_rss_bytes"] / 2**20),
        "second_start_s": round(second["seconds"], 2),
        "second_start_peak_rss_mib": round(second["peak_rss_bytes"] / 2**20),
        "import_rss_mib": round(first["import_rss_bytes"] / 2**20),
        "train_steps": args.steps, "batch_size": 128,
        "memory_images_per_sec": [round(p["memory"]["images_per_sec"], 1) for p in rounds],
        "disk_images_per_sec": [round(p["disk"]["images_per_sec"], 1) for p in rounds],
        "disk_over_memory": [round(x, 3) for x in ratios], "median_ratio": round(statistics.median(ratios), 3),
        "memory_peak_rss_mib": [round(p["memory"]["peak_rss_bytes"] / 2**20) for p in rounds],
        "disk_peak_rss_mib": [round(p["disk"]["peak_rss_bytes"] / 2**20) for p in rounds],
    }
    print(json.dumps(row, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
