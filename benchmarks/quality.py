"""Quality: train a model with the seed's protocol (or a preset / options), score it, append a results row.

1. `gentk train MODEL --epochs N [--preset P] [options]` into runs/quality/<name>
   (timed; resumes that run if it exists and is unfinished, so a long run can be
   trained in pieces: the row also carries the loop time summed over all pieces);
2. `gentk fid RUN --num-samples 10000` (Inception FID against the whole MNIST
   test split, or `--num-reference` of it; samples, and reconstructions for
   VAE-family models);
3. optionally `gentk fid RUN --num-samples 5000 --num-reference 5000` (the
   count the seed used for some rows);
4. `gentk fid RUN --features mnist-classifier` (Frechet distance in the MNIST
   classifier's feature space, class coverage and confidence);
5. appends a row to benchmarks/results/quality.jsonl: model, settings, epochs,
   wall times, device, scores, Inception weights hash, gentk version, machine,
   and for ControlVAE the KL tracking error (mean |KL - target| over the last
   epoch's steps).

Usage: python benchmarks/quality.py MODEL [--epochs N] [--preset P] [--name NAME]
       [--also-5000] [--device auto] -- [extra gentk train options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import describe  # this folder's machine.py: one machine description

from gentk.report import summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality.jsonl"


def gentk(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gentk", *args], text=True, capture_output=True)
    elapsed = time.perf_counter() - started
    sys.stderr.write(proc.stderr[-2000:])
    if proc.returncode != 0:
        raise SystemExit(f"gentk {' '.join(args)} failed ({proc.returncode})")
    return elapsed, proc.stdout


def kl_tracking(run: Path, target: float) -> dict | None:
    """Mean |KL - target| over the training steps of the last finished epoch."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "split" not in r and "kl" in r]
    if not train:
        return None
    last_epoch = max(r["epoch"] for r in train)
    last = [r for r in train if r["epoch"] == last_epoch] or train
    err = sum(abs(r["kl"] - target) for r in last) / len(last)
    # Each epoch's own error too: "within 5 epochs" is epoch 5's number in a longer run.
    by_epoch = {}
    for r in train:
        by_epoch.setdefault(r["epoch"], []).append(abs(r["kl"] - target))
    return {"target": target, "mean_abs_error": round(err, 3), "steps": len(last),
            "final_beta": last[-1].get("beta"),
            "by_epoch": {str(e + 1): round(sum(v) / len(v), 3) for e, v in sorted(by_epoch.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Options after -- go to gentk train as they are, e.g. -- --ema 0.999.")
    ap.add_argument("model")
    ap.add_argument("--epochs", type=int, default=None, help="Default: the model's (the seed's protocol).")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--name", default=None, help="Run name under runs/quality (default: MODEL-eEPOCHS[-PRESET]).")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-samples", type=int, default=10000)
    ap.add_argument("--num-reference", type=int, default=None,
                    help="Test images in the main score (default: all 10,000); 5000 with --num-samples 5000 is "
                         "the seed's count for its VAE rows.")
    ap.add_argument("--also-5000", action="store_true", help="Also score 5000 samples vs 5000 test images.")
    # Everything after "--" goes to gentk train as is (argparse alone would give a
    # trailing positional nothing once MODEL is consumed, and read "--ema" as its own).
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    args.extra = argv[cut + 1:]

    name = args.name or "-".join(x for x in (args.model, f"e{args.epochs}" if args.epochs else "default",
                                             args.preset) if x)
    run = ROOT / "runs" / "quality" / name
    train_args = ["train", args.model, "--run-dir", str(run), "--device", args.device, "--no-progress",
                  "--checkpoint-every", "2000", "--sample-every", "2000"]
    if args.epochs:
        train_args += ["--epochs", str(args.epochs)]
    if args.preset:
        train_args += ["--preset", args.preset]
    train_args += args.extra
    resumed = (run / "config.json").is_file()
    if resumed:  # --epochs may extend a finished run (its other settings are the run's own)
        train_args = ["train", args.model, "--run-dir", str(run), "--resume", "--no-progress"]
        if args.epochs:
            train_args += ["--epochs", str(args.epochs)]
    train_s, _ = gentk(*train_args)
    config = json.loads((run / "config.json").read_text())
    # The training loop's own time summed over every session of the run (kept in its
    # checkpoints), so a long run trained in pieces with resume still reports its whole cost.
    trained = summarize(run)

    reference = ["--num-reference", str(args.num_reference)] if args.num_reference else []
    fid_s, _ = gentk("fid", str(run), "--num-samples", str(args.num_samples), *reference, "--device", args.device,
                     "--no-progress")
    fid = json.loads((run / "fid.json").read_text())
    row = {
        "model": args.model, "name": name, "preset": args.preset, "options": config["options"],
        "epochs": config["epochs"], "batch_size": config["batch_size"], "lr": config["lr"],
        "lr_schedule": config.get("lr_schedule", "constant"),
        "data_fraction": config["data_fraction"], "extra_args": args.extra,
        "train_wall_s": round(train_s, 1), "resumed": resumed, "steps": trained["steps"],
        "train_loop_s_all_sessions": round(trained["wall_time_s"] or 0.0, 1),
        "fid_wall_s": round(fid_s, 1), "device": fid["device"],
        "fid": {"samples": fid["scores"]["samples"], "reconstructions": fid["scores"].get("reconstructions"),
                "counts": fid["counts"], "reference_images": fid["reference"]["images"]},
        "inception_sha256": fid["weights"]["sha256"],
    }
    if args.also_5000:
        gentk("fid", str(run), "--num-samples", "5000", "--num-reference", "5000", "--device", args.device,
              "--no-progress")
        small = json.loads((run / "fid.json").read_text())
        row["fid_5000"] = {"samples": small["scores"]["samples"],
                           "reconstructions": small["scores"].get("reconstructions")}
    gentk("fid", str(run), "--features", "mnist-classifier", "--num-samples", str(args.num_samples),
          "--device", args.device, "--no-progress")
    row["classifier"] = classifier_columns(json.loads((run / "fid-mnist-classifier.json").read_text()))
    if "target_kl" in config["options"]:
        row["kl_tracking"] = kl_tracking(run, config["options"]["target_kl"])
    append_row(row)


def classifier_columns(result: dict) -> dict:
    """A row's classifier columns from a `--features mnist-classifier` result."""
    scores = result["scores"]
    return {"fd_samples": scores["samples"], "fd_reconstructions": scores.get("reconstructions"),
            **result.get("sample_classes", {}), "weights_sha256": result["weights"]["sha256"]}


def append_row(row: dict, machine_note: str = "") -> None:
    """Stamp a row with gentk's and torch's versions, this machine and the date; append it and print it."""
    import torch

    from gentk import __version__

    row.update({"gentk_version": __version__, "torch": torch.__version__,
                "machine": describe() + machine_note,
                "date": time.strftime("%Y-%m-%d %H:%M")})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
