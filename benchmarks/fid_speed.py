"""FID speed: `python -m pytorch_fid A B` against `gentk fid A B` and `gentk fid RUN` (cached reference).

One process run, same machine, same folders, same Inception weights file. For
each size N (default 300 and 2100 images per side) and each repeat:

1. writes folder A (the first N MNIST test images, 28x28 PNG) and folder B
   (N samples of RUN_DIR, written by `gentk sample`);
2. times `python -m pytorch_fid A B` (its defaults: batch 50, DataLoader workers);
3. times `gentk fid A B`;
4. times `gentk fid RUN_DIR` twice with an empty reference cache: the first
   computes the test-split statistics, the second (another sample seed, as a
   second run would) finds them cached and extracts only its own samples;
5. with --bf16, times `gentk fid A B --precision bf16` (its deviation from fp32);
6. prints the times, the ratios, the images/s end to end against the CPU's
   fp32 limit, every FID, and appends one JSON row per size and repeat to
   benchmarks/results/fid_speed.jsonl; at the end, the lowest and the median
   ratio of each size over the repeats.

Each repeat gets a fresh GENTK_HOME (an empty reference cache) that shares
only the user's MNIST download and gentk's compiled-network cache (built once
per machine, torch version, weights and batch size, as pytorch-fid's weights
are downloaded once per machine): before the first repeat the script runs one
small `gentk fid` that builds it if it is missing, and prints how long that took.

Usage: python benchmarks/fid_speed.py RUN_DIR [--sizes 300,2100] [--repeat 3] [--bf16]
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

import torch
from machine import describe  # this folder's machine.py: one machine description

ROOT = Path(__file__).resolve().parents[1]

#: InceptionV3 at 299x299 is about 5.7 GMAC per image; two AVX-512 cores at this machine's
#: clock do about 33 images/s of that in fp32 (issue 18's estimate): the bar for images/s.
FP32_LIMIT_IMAGES_PER_S = 33


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def user_home() -> Path:
    return Path(os.environ.get("GENTK_HOME", Path.home() / ".cache" / "gentk"))


def prepare_compiled(run_dir: str, pth: Path, tmp: Path) -> str:
    """One `gentk fid` on 8 + 8 images in the user's GENTK_HOME: builds the compiled network
    there if this machine has none yet (once per machine, as pytorch-fid downloads its weights
    once), so the timed runs measure what every later `gentk fid` costs."""
    import gentk

    folder = tmp / "warm"
    gentk.sample(run_dir, 8, folder, seed=0)
    proc = subprocess.run([sys.executable, "-m", "gentk", "fid", str(folder), str(folder), "--device", "cpu",
                           "--weights", str(pth), "--no-progress"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"gentk fid failed:\n{proc.stderr[-2000:]}")
    return "built now" if "compiling Inception" in proc.stderr else "found in the cache"


def one_size(args, n: int, repeat: int, pth: Path, weights, tmp: Path) -> dict:
    import gentk
    from gentk.data import fit_images, load_dataset
    from gentk.images import save_pngs

    work = tmp / f"n{n}-r{repeat}"
    a, b, home = work / "a", work / "b", work / "gentk-home"
    home.mkdir(parents=True)
    save_pngs(fit_images(load_dataset("mnist").test[:n], 28, 1).float() / 255, a)
    gentk.sample(args.run_dir, n, b, seed=0)
    # The reference cache starts empty; MNIST and the compiled network come from the user's cache.
    for shared in ("datasets", "compiled"):
        if (user_home() / shared).is_dir():
            os.symlink(user_home() / shared, home / shared)
    env = dict(os.environ, TORCH_HOME=str(tmp / "torch"), GENTK_HOME=str(home))
    gentk_cmd = [sys.executable, "-m", "gentk", "fid", "--device", "cpu", "--weights", str(pth),
                 "--no-progress", "--json"]
    t_ref, out_ref = timed([sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu"], env)
    t_dirs, out_dirs = timed(gentk_cmd + [str(a), str(b)], env)
    t_run1, out_run1 = timed(gentk_cmd + [args.run_dir, "--num-samples", str(n), "--num-reference", str(n)], env)
    t_run2, out_run2 = timed(gentk_cmd + [args.run_dir, "--num-samples", str(n), "--num-reference", str(n),
                                          "--seed", "1"], env)
    fid_ref = float(out_ref.strip().split()[-1])
    fid_dirs = json.loads(out_dirs)["fid"]
    run1, run2 = json.loads(out_run1), json.loads(out_run2)
    row = {
        "machine": f"{describe()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "num_images": n, "repeat": repeat + 1,
        "pytorch_fid_s": round(t_ref, 1), "gentk_folders_s": round(t_dirs, 1),
        "gentk_run_first_s": round(t_run1, 1), "gentk_run_cached_reference_s": round(t_run2, 1),
        "ratio_folders": round(t_ref / t_dirs, 2), "ratio_cached_reference": round(t_ref / t_run2, 2),
        "gentk_folders_images_per_s": round(2 * n / t_dirs, 1),
        "pytorch_fid_images_per_s": round(2 * n / t_ref, 1),
        "gentk_network": json.loads(out_dirs).get("network"),
        "fid_pytorch_fid": fid_ref, "fid_gentk_folders": fid_dirs,
        "relative_difference": abs(fid_dirs - fid_ref) / abs(fid_ref),
        "fid_gentk_run_seed0": run1["scores"]["samples"], "fid_gentk_run_seed1": run2["scores"]["samples"],
        "weights_sha256": weights.sha256, "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if args.bf16:
        t_bf16, out_bf16 = timed(gentk_cmd + [str(a), str(b), "--precision", "bf16"], env)
        row.update(gentk_folders_bf16_s=round(t_bf16, 1), fid_gentk_folders_bf16=json.loads(out_bf16)["fid"])
        row["bf16_relative_deviation"] = abs(row["fid_gentk_folders_bf16"] - fid_dirs) / abs(fid_dirs)
    print(f"\n{n} images per side, repeat {repeat + 1}")
    print(f"python -m pytorch_fid  {t_ref:8.1f} s   FID {fid_ref:.6f}   {2 * n / t_ref:.1f} images/s")
    print(f"gentk fid A B          {t_dirs:8.1f} s   FID {fid_dirs:.6f}   {t_ref / t_dirs:.2f}x   "
          f"{2 * n / t_dirs:.1f} images/s end to end (fp32 limit about {FP32_LIMIT_IMAGES_PER_S})")
    print(f"gentk fid RUN (first)  {t_run1:8.1f} s   FID {run1['scores']['samples']:.6f} (same images as B)")
    print(f"gentk fid RUN (cached) {t_run2:8.1f} s   FID {run2['scores']['samples']:.6f} (seed 1)   "
          f"{t_ref / t_run2:.2f}x")
    if args.bf16:
        print(f"gentk fid A B --precision bf16 {row['gentk_folders_bf16_s']:8.1f} s   FID "
              f"{row['fid_gentk_folders_bf16']:.6f}   deviation from fp32 {row['bf16_relative_deviation']:.2e}")
    print(f"relative difference pytorch-fid vs gentk folders: {row['relative_difference']:.2e}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a trained gentk run on MNIST (e.g. from `gentk train gan --epochs 1`)")
    parser.add_argument("--sizes", default="300,2100",
                        help="images per side, comma-separated (2100: above 2048, so the covariance is full rank)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every measurement (the machine is noisy)")
    parser.add_argument("--bf16", action="store_true", help="also time --precision bf16 and its FID deviation")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from safetensors.torch import load_file

    from gentk.fid.weights import OFFICIAL_NAME, resolve_weights

    weights = resolve_weights()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gentk-fid-bench-") as tmp:
        tmp = Path(tmp)
        pth = tmp / "torch" / "hub" / "checkpoints" / OFFICIAL_NAME
        pth.parent.mkdir(parents=True)
        torch.save(load_file(weights.path) if weights.path.endswith(".safetensors")
                   else torch.load(weights.path, weights_only=True), pth)  # both tools read this one file
        started = time.perf_counter()
        warm = prepare_compiled(args.run_dir, pth, tmp)
        print(f"gentk fid on 8 + 8 images, building or finding the compiled network: "
              f"{time.perf_counter() - started:.1f} s ({warm})")
        for repeat in range(args.repeat):
            for n in sizes:
                rows.append(one_size(args, n, repeat, pth, weights, tmp))
                results = ROOT / "benchmarks" / "results"
                results.mkdir(exist_ok=True)
                with open(results / "fid_speed.jsonl", "a") as fh:
                    fh.write(json.dumps(rows[-1]) + "\n")
    print("\nsize   ratio folders (lowest / median)   ratio cached reference (lowest / median)   max rel. diff")
    for n in sizes:
        mine = [r for r in rows if r["num_images"] == n]
        folders = [r["ratio_folders"] for r in mine]
        cached = [r["ratio_cached_reference"] for r in mine]
        print(f"{n:5d}  {min(folders):5.2f} / {statistics.median(folders):5.2f}"
              f"                     {min(cached):5.2f} / {statistics.median(cached):5.2f}"
              f"                              {max(r['relative_difference'] for r in mine):.1e}")


if __name__ == "__main__":
    main()
