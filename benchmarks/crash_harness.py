"""Kill -9 at random moments, resume, repeat: the result must equal an uninterrupted run bitwise.

For each model and trial: start `gentk train` in a subprocess (a checkpoint
every step), SIGKILL it once it has passed a random step, a random 0-50 ms
later (so many kills land inside a checkpoint write), check that every
checkpoint on disk verifies, resume, and repeat (up to 3 kills a trial) until
the run finishes; then compare every model and optimizer tensor
with an uninterrupted run of the same settings. Runs on a tiny generated image
folder so a trial takes seconds.

Usage: python benchmarks/crash_harness.py [--models vae,gan,...] [--trials 20] [--steps 12]
Prints one line per model and appends JSON rows to benchmarks/results/crash_harness.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SETTINGS = {
    "vae": ["--batch-size", "8"],
    "controlvae": ["--batch-size", "8", "--target-kl", "3"],
    "gan": ["--batch-size", "8"],
    "wgan": ["--batch-size", "8", "--n-critic", "3"],
    "ssgan": ["--batch-size", "2", "--data-fraction", "1"],
}


def train_cmd(model: str, run: Path, data: str, steps: int) -> list[str]:
    return [sys.executable, "-m", "gentk", "train", model, "--run-dir", str(run), "--data", data,
            "--max-steps", str(steps), "--epochs", "1000", "--checkpoint-every", "1", "--device", "cpu",
            "--no-progress", "--eval-limit", "8", *SETTINGS[model]]


def resume_cmd(model: str, run: Path) -> list[str]:
    return [sys.executable, "-m", "gentk", "train", model, "--run-dir", str(run), "--resume", "--no-progress"]


def corrupt_checkpoints(folder: Path) -> int:
    from gentk.checkpoint import list_checkpoints, read_checkpoint
    from gentk.errors import CheckpointError

    bad = 0
    for name in list_checkpoints(folder):
        try:
            read_checkpoint(folder, name)
        except CheckpointError:
            bad += 1
    return bad


def final_tensors(run: Path) -> dict:
    from safetensors.torch import load_file

    name = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / f"{name}.safetensors")


def equal(a: dict, b: dict) -> bool:
    import torch

    keys = [k for k in a if k.startswith(("model/", "optim/"))]
    return set(keys) == {k for k in b if k.startswith(("model/", "optim/"))} and all(
        torch.equal(a[k], b[k]) for k in keys)


def latest_step(run: Path) -> int:
    try:
        return int((run / "checkpoints" / "latest").read_text().strip().split("-")[1])
    except (OSError, ValueError, IndexError):
        return -1


def trial(model: str, data: str, steps: int, reference: dict, workdir: Path, rng: random.Random,
          max_kills: int = 3) -> dict:
    """Kill after a random number of checkpoints plus a random few milliseconds (so that many
    kills land inside a checkpoint write), up to ``max_kills`` times, then let the run finish."""
    run = workdir / f"{model}-{rng.randrange(1 << 30)}"
    kills, corrupt, cmd = 0, 0, train_cmd(model, run, data, steps)
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        done = max(latest_step(run), 0)
        if kills < max_kills and done >= steps:  # killed after its last checkpoint: nothing left to cut
            max_kills = kills
        if kills < max_kills:
            target = rng.randrange(done, steps)
            while proc.poll() is None and latest_step(run) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None and kills < max_kills:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            corrupt += corrupt_checkpoints(run / "checkpoints")
            cmd = resume_cmd(model, run) if (run / "config.json").is_file() else train_cmd(model, run, data, steps)
            continue
        proc.wait()
        if proc.returncode != 0:
            return {"ok": False, "kills": kills, "corrupt": corrupt, "error": proc.stderr.read()[-500:]}
        break
    corrupt += corrupt_checkpoints(run / "checkpoints")
    return {"ok": equal(reference, final_tensors(run)), "kills": kills, "corrupt": corrupt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vae,controlvae,gan,wgan,ssgan")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from conftest import make_image_folder

    rng = random.Random(args.seed)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gentk-crash-") as tmp:
        tmp = Path(tmp)
        data = "folder:" + str(make_image_folder(tmp / "data"))
        for model in args.models.split(","):
            straight = tmp / f"{model}-straight"
            started = time.perf_counter()
            subprocess.run(train_cmd(model, straight, data, args.steps), check=True, capture_output=True)
            duration = time.perf_counter() - started
            reference = final_tensors(straight)
            outcomes = [trial(model, data, args.steps, reference, tmp, rng) for _ in range(args.trials)]
            row = {"model": model, "trials": args.trials, "steps": args.steps,
                   "bitwise_equal": sum(o["ok"] for o in outcomes),
                   "kills": sum(o["kills"] for o in outcomes),
                   "corrupt_checkpoints": sum(o["corrupt"] for o in outcomes),
                   "errors": [o["error"] for o in outcomes if "error" in o],
                   "uninterrupted_run_s": round(duration, 1), "date": time.strftime("%Y-%m-%d %H:%M")}
            print(f"{model:11s} {row['bitwise_equal']}/{args.trials} bitwise equal, {row['kills']} kills, "
                  f"{row['corrupt_checkpoints']} corrupt checkpoints", flush=True)
            with open(results / "crash_harness.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("GENTK_OFFLINE", "1")
    main()
