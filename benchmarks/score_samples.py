"""Quality row for samples written on another machine: score a folder of a run's samples, append a row.

For runs trained where the checkpoints cannot come back (a lent GPU returns at most
16 MiB per file; an SSGAN checkpoint with its optimizer state is about 62 MB): there,
`gentk sample RUN --checkpoint step-N -n 10000 -o FOLDER`; here, with the run's
config.json, metrics.jsonl and checkpoints/*.json sidecars (no weights) and the folder:

1. Inception FID of the folder against the run's whole test split, fitted as its model
   sees images (pytorch-fid numerics; the same number `gentk fid RUN` gives for the same
   images, see tests/test_classifier.py);
2. the Frechet distance in the MNIST classifier's features, class coverage and confidence;
3. a row in benchmarks/results/quality.jsonl like quality.py's, with the step, epoch and
   training-loop time of the checkpoint the samples came from (from its sidecar) and
   where it was trained (--trained-on).

Usage: python benchmarks/score_samples.py RUN_DIR SAMPLES --checkpoint step-N --trained-on "..."
       [--name NAME] [--preset P] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from quality import append_row, classifier_columns  # this folder's quality.py: one row format

from gentk.checkpoint import read_sidecar
from gentk.fid import FidSettings, fid_of_samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="Run dir holding config.json and checkpoints/*.json (weights not needed).")
    ap.add_argument("samples", type=Path, help="Folder of the run's samples (gentk sample).")
    ap.add_argument("--checkpoint", required=True, help="The checkpoint the samples came from (step-NNNNNNNN).")
    ap.add_argument("--trained-on", required=True, help="Where the run trained, e.g. 'NVIDIA H200'.")
    ap.add_argument("--name", default=None, help="Row name (default: the run dir's name).")
    ap.add_argument("--preset", default=None, help="The preset the run was trained with, for the row.")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    meta = read_sidecar(args.run / "checkpoints" / f"{args.checkpoint}.json")
    scores = {}
    for features in ("inception", "mnist-classifier"):
        started = time.perf_counter()
        result = fid_of_samples(args.run, args.samples, FidSettings(device=args.device, features=features,
                                                                    progress=False))
        scores[features] = (result, time.perf_counter() - started)
        print(f"{features}: {result['scores']['samples']:.2f} ({result['counts']['samples']} samples vs "
              f"{result['reference']['images']} test images)", flush=True)
    (fid, fid_s), (cls, _) = scores["inception"], scores["mnist-classifier"]
    row = {
        "model": config["model"], "name": args.name or args.run.name, "preset": args.preset,
        "options": config["options"], "epochs": config["epochs"], "batch_size": config["batch_size"],
        "lr": config["lr"], "data_fraction": config["data_fraction"],
        "samples_from": {"checkpoint": args.checkpoint, "step": meta["step"],
                         "epochs_done": meta.get("state", {}).get("epoch"), "folder": str(args.samples)},
        "steps": meta["step"], "train_loop_s_all_sessions": round(meta.get("state", {}).get("elapsed") or 0.0, 1),
        "trained_on": args.trained_on,
        "fid_wall_s": round(fid_s, 1), "device": fid["device"],
        "fid": {"samples": fid["scores"]["samples"], "reconstructions": None, "counts": fid["counts"],
                "reference_images": fid["reference"]["images"]},
        "inception_sha256": fid["weights"]["sha256"],
        "classifier": classifier_columns(cls),
    }
    append_row(row, machine_note=" (scoring)")


if __name__ == "__main__":
    main()
