"""FID speed: `python -m pytorch_fid A B` against `gentk fid A B` and `gentk fid RUN` (cached reference).

One process run, same machine, same folders, same Inception weights file:

1. writes folder A (the first N MNIST test images, 28x28 PNG) and folder B
   (N samples of RUN_DIR, written by `gentk sample`);
2. times `python -m pytorch_fid A B` (its defaults: batch 50, DataLoader workers);
3. times `gentk fid A B`;
4. times `gentk fid RUN_DIR` twice with an empty reference cache: the first
   computes the test-split statistics, the second (another sample seed, as a
   second run would) finds them cached and extracts only its own samples;
5. times `gentk fid A B --precision bf16` (its deviation from fp32);
6. prints the times, the ratios and every FID, and appends a JSON row to
   benchmarks/results/fid_speed.jsonl.

Usage: python benchmarks/fid_speed.py RUN_DIR [--num-images 2100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import describe  # this folder's machine.py: one machine description

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a trained gentk run on MNIST (e.g. from `gentk train gan --epochs 1`)")
    parser.add_argument("--num-images", type=int, default=2100,
                        help="images per side (above 2048 so the covariance is full rank)")
    args = parser.parse_args()

    from safetensors.torch import load_file

    import gentk
    from gentk.data import fit_images, load_dataset
    from gentk.fid.weights import OFFICIAL_NAME, resolve_weights
    from gentk.images import save_pngs

    n = args.num_images
    with tempfile.TemporaryDirectory(prefix="gentk-fid-bench-") as tmp:
        tmp = Path(tmp)
        weights = resolve_weights()
        torch_home = tmp / "torch"
        (torch_home / "hub" / "checkpoints").mkdir(parents=True)
        pth = torch_home / "hub" / "checkpoints" / OFFICIAL_NAME
        state = load_file(weights.path) if weights.path.endswith(".safetensors") else torch.load(
            weights.path, weights_only=True)
        torch.save(state, pth)  # both tools read this one file

        test = fit_images(load_dataset("mnist").test[:n], 28, 1)
        a, b = tmp / "a", tmp / "b"
        save_pngs(test.float() / 255, a)
        gentk.sample(args.run_dir, n, b, seed=0)

        env = dict(os.environ, TORCH_HOME=str(torch_home), GENTK_HOME=str(tmp / "gentk-home"))
        # The reference cache starts empty; MNIST itself comes from the user's cache.
        data_home = Path(os.environ.get("GENTK_HOME", Path.home() / ".cache" / "gentk")) / "datasets"
        (tmp / "gentk-home").mkdir()
        if data_home.is_dir():
            os.symlink(data_home, tmp / "gentk-home" / "datasets")

        gentk_cmd = [sys.executable, "-m", "gentk", "fid", "--device", "cpu", "--weights", str(pth),
                     "--no-progress", "--json"]
        t_ref, out_ref = timed([sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu"], env)
        t_dirs, out_dirs = timed(gentk_cmd + [str(a), str(b)], env)
        t_run1, out_run1 = timed(gentk_cmd + [args.run_dir, "--num-samples", str(n), "--num-reference", str(n)], env)
        t_run2, out_run2 = timed(gentk_cmd + [args.run_dir, "--num-samples", str(n), "--num-reference", str(n),
                                              "--seed", "1"], env)
        t_bf16, out_bf16 = timed(gentk_cmd + [str(a), str(b), "--precision", "bf16"], env)

    fid_ref = float(out_ref.strip().split()[-1])
    fid_dirs = json.loads(out_dirs)["fid"]
    run1, run2 = json.loads(out_run1), json.loads(out_run2)
    row = {
        "machine": f"{describe()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "num_images": n,
        "pytorch_fid_s": round(t_ref, 1), "gentk_folders_s": round(t_dirs, 1),
        "gentk_run_first_s": round(t_run1, 1), "gentk_run_cached_reference_s": round(t_run2, 1),
        "ratio_folders": round(t_ref / t_dirs, 2), "ratio_cached_reference": round(t_ref / t_run2, 2),
        "fid_pytorch_fid": fid_ref, "fid_gentk_folders": fid_dirs,
        "relative_difference": abs(fid_dirs - fid_ref) / abs(fid_ref),
        "fid_gentk_run_seed0": run1["scores"]["samples"], "fid_gentk_run_seed1": run2["scores"]["samples"],
        "gentk_folders_bf16_s": round(t_bf16, 1), "fid_gentk_folders_bf16": json.loads(out_bf16)["fid"],
        "bf16_relative_deviation": abs(json.loads(out_bf16)["fid"] - fid_dirs) / abs(fid_dirs),
        "weights_sha256": weights.sha256, "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"images per side        {n}")
    print(f"python -m pytorch_fid  {t_ref:8.1f} s   FID {fid_ref:.6f}")
    print(f"gentk fid A B          {t_dirs:8.1f} s   FID {fid_dirs:.6f}   {t_ref / t_dirs:.2f}x")
    print(f"gentk fid RUN (first)  {t_run1:8.1f} s   FID {run1['scores']['samples']:.6f} (same images as B)")
    print(f"gentk fid RUN (cached) {t_run2:8.1f} s   FID {run2['scores']['samples']:.6f} (seed 1)   "
          f"{t_ref / t_run2:.2f}x")
    print(f"gentk fid A B --precision bf16 {t_bf16:8.1f} s   FID {row['fid_gentk_folders_bf16']:.6f}   "
          f"deviation from fp32 {row['bf16_relative_deviation']:.2e} (relative)")
    print(f"relative difference pytorch-fid vs gentk folders: {row['relative_difference']:.2e}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    with open(results / "fid_speed.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
