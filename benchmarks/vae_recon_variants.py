"""How a VAE's reconstruction FID depends on how the reconstructions are turned into images.

The seed reports FID 29.41 for its VAE's reconstructions but does not show how it
wrote them to PNG. This scores one trained run's reconstructions of the first N
test images (against the same N, as the seed) three ways, in one process:

- `mean-sigmoid`: sigmoid(decoder(posterior mean)), what `gentk fid` scores;
- `sampled-sigmoid`: sigmoid(decoder(z)) with z drawn from the posterior (the seed's forward pass);
- `clamped-logits`: the decoder's logits clamped to [0, 1], what `save_image(logits)`
  writes when the sigmoid is left out (the network ends in logits for BCE-with-logits).

Usage: python benchmarks/vae_recon_variants.py RUN [--num 5000] [--ways mean-sigmoid,...]
Appends a row to benchmarks/results/vae_recon_variants.jsonl and prints it;
nothing is written into the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from machine import describe  # this folder's machine.py

from gentk.errors import GentkError
from gentk.fid.score import FidSettings, _extractor, _run_reference
from gentk.fid.stats import frechet_distance, stats_from_features
from gentk.images import to_uint8
from gentk.sampling import load_run

RESULTS = Path(__file__).resolve().parent / "results" / "vae_recon_variants.jsonl"
WAYS = ("mean-sigmoid", "sampled-sigmoid", "clamped-logits")


@torch.no_grad()
def variants(model, real_uint8: torch.Tensor, ways=WAYS, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """The reconstructions of ``real_uint8`` each of ``ways`` makes (only those decoded)."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in ways}
    gen = torch.Generator().manual_seed(0)
    for start in range(0, real_uint8.shape[0], batch_size):
        x = real_uint8[start:start + batch_size].float() / 255
        mean, logvar = model.encoder(x)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=gen)  # drawn always: same noise
        logits_mean = model.decoder(mean) if {"mean-sigmoid", "clamped-logits"} & set(ways) else None
        if "mean-sigmoid" in out:
            out["mean-sigmoid"].append(to_uint8(torch.sigmoid(logits_mean)))
        if "sampled-sigmoid" in out:
            out["sampled-sigmoid"].append(to_uint8(torch.sigmoid(model.decoder(z))))
        if "clamped-logits" in out:
            out["clamped-logits"].append(to_uint8(logits_mean.clamp(0, 1)))
    return {k: torch.cat(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog=f"Appends a row to {RESULTS.relative_to(RESULTS.parents[2])}.")
    ap.add_argument("run", help="A VAE-family run (gentk train vae or controlvae).")
    ap.add_argument("--num", type=int, default=5000,
                    help="The first NUM test images: reconstructed, and the reference (default: 5000, the seed's "
                         "count). Inception takes about 8 images/s per core here: NUM for each of the three ways, "
                         "and NUM more the first time, for the reference.")
    ap.add_argument("--ways", default=",".join(WAYS),
                    help=f"Comma-separated subset of {', '.join(WAYS)} to score (default: all three); "
                         "each way costs NUM images of Inception.")
    args = ap.parse_args()
    args.ways = args.ways.split(",")
    unknown = sorted(set(args.ways) - set(WAYS))
    if unknown:
        sys.exit(f"Error: --ways takes {', '.join(WAYS)} (got {', '.join(unknown)})")
    if args.num < 2:
        sys.exit(f"Error: --num must be at least 2 (got {args.num})")
    try:
        score(args)
    except GentkError as exc:
        sys.exit(f"Error: {exc}")


def score(args) -> None:
    settings = FidSettings(device="cpu")
    extract = _extractor(settings)
    loaded = load_run(args.run, device="cpu")
    model = loaded.model.eval()
    cfg = loaded.config
    if not (hasattr(model, "encoder") and hasattr(model, "decoder")):
        sys.exit(f"Error: {args.run} is a {cfg.model} run, with no encoder and decoder to reconstruct with: "
                 "give a vae or controlvae run")
    reference, ref_stats, _ = _run_reference(cfg, model, args.num, extract, settings, [])
    real = reference[:args.num]
    if real.shape[0] < args.num:
        print(f"note: the run's test split has {real.shape[0]} images: scoring {real.shape[0]}, not {args.num}",
              file=sys.stderr)
    scores = {name: round(frechet_distance(stats_from_features(extract(images, label=name)), ref_stats), 2)
              for name, images in variants(model, real, args.ways).items()}
    row = {"run": args.run, "model": cfg.model, "options": cfg.options, "epochs": cfg.epochs,
           "max_steps": cfg.max_steps, "lr": cfg.lr, "lr_schedule": cfg.lr_schedule, "step": loaded.step, "images": int(real.shape[0]),
           "reference": f"first {int(real.shape[0])} test images", "fid": scores,
           "inception_sha256": extract.weights.record()["sha256"], "machine": describe(),
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "python benchmarks/vae_recon_variants.py " + " ".join(sys.argv[1:])}
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
