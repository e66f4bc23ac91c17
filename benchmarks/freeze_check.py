"""Freezing the networks a phase does not train changes no number: the 50-step check.

For each model, two runs of --steps steps on MNIST from the same seed, on the CPU, in
this process: gentk as it ships (each phase turns off ``requires_grad`` for the other
networks' parameters) and gentk with that switched off (every backward also computes the
other networks' weight gradients, as the seed's loops do, and they are thrown away). It
reports the largest absolute difference over all weights and optimizer state at the end,
and over every logged loss, and each run's training wall time (one run each: the speed
comparison against the seed's loops is benchmarks/train_speed.py).

Usage: python benchmarks/freeze_check.py [--models gan,wgan,ssgan] [--steps 50]
Prints a table and appends one JSON row per model to benchmarks/results/freeze_check.jsonl.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from machine import describe  # this folder's machine.py
from safetensors.torch import load_file

import gentk.engine.loop as loop
from gentk.engine import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "freeze_check.jsonl"
# SSGAN's seed batch (64) takes ~20 s a step on 2 cores; 16 keeps the check to minutes.
BATCH = {"gan": 128, "wgan": 64, "ssgan": 16}


def run(model: str, folder: Path, steps: int, freeze: bool) -> tuple[dict, list[dict], float]:
    shipped = loop.frozen_parameters
    if not freeze:
        loop.frozen_parameters = lambda m, phases, params: {p.name: [] for p in phases}
    try:
        t = time.perf_counter()
        train(model, folder, max_steps=steps, batch_size=BATCH.get(model, 64), device="cpu", progress=False,
              log_every=1, sample_every=10**6, checkpoint_every=10**6)
        seconds = time.perf_counter() - t
    finally:
        loop.frozen_parameters = shipped
    latest = (folder / "checkpoints" / "latest").read_text().strip()
    tensors = load_file(folder / "checkpoints" / f"{latest}.safetensors")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return tensors, [r for r in rows if r.get("split") != "test"], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gan,wgan,ssgan")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gentk-freeze-"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    print(f"{'model':8} {'steps':>5} {'max |weight diff|':>18} {'max |loss diff|':>16} {'frozen s':>9} {'plain s':>8}")
    for model in args.models.split(","):
        a, rows_a, t_a = run(model, work / f"{model}-frozen", args.steps, True)
        b, rows_b, t_b = run(model, work / f"{model}-plain", args.steps, False)
        keys = sorted(k for k in a if k.startswith(("model/", "optim/")))
        assert keys == sorted(k for k in b if k.startswith(("model/", "optim/")))
        weight = max((a[k].double() - b[k].double()).abs().max().item() for k in keys if a[k].numel())
        losses = [k for k in rows_a[0] if k.endswith("loss")]
        assert len(rows_a) == len(rows_b) and losses
        loss = max(abs(x[k] - y[k]) for x, y in zip(rows_a, rows_b) for k in losses)
        bitwise = all(torch.equal(a[k], b[k]) for k in keys)
        print(f"{model:8} {args.steps:5d} {weight:18.3g} {loss:16.3g} {t_a:9.1f} {t_b:8.1f}"
              f"{'  (bitwise equal)' if bitwise else ''}", flush=True)
        row = {"benchmark": "freeze_check", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": describe(),
               "model": model, "steps": args.steps, "batch_size": BATCH.get(model, 64), "tensors": len(keys),
               "max_abs_weight_diff": weight, "max_abs_loss_diff": loss, "bitwise_equal": bitwise,
               "loss_keys": losses, "frozen_train_s": round(t_a, 1), "plain_train_s": round(t_b, 1)}
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
