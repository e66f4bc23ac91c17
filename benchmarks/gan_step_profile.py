"""Where one GAN training step goes on this machine, and two ways of taking it.

Builds the seed's 28x28 GAN networks (gentk_gan.networks) with fused Adam and times, in one
process on random images, a discriminator step plus a generator step three ways:

- ``no freeze``: the discriminator keeps ``requires_grad`` in the generator's step (the seed's loop);
- ``freeze``: it is switched off there (what gentk's engine does since 0.2.0);
- ``freeze + cat``: as ``freeze``, with one discriminator pass over ``cat(real, fake)``
  instead of two (the discriminator has no batch norm, so the losses agree to rounding).

Then profiles ``freeze`` with torch.profiler and prints the operators by self CPU time.
Nothing is written; the numbers are for docs/performance.md's "Freezing" section.

Usage: python benchmarks/gan_step_profile.py [--threads 1] [--steps 30] [--batch 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Prints ms per step for each way, then the profile table.")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per way, after 5 warm-up steps (default: 30)")
    ap.add_argument("--batch", type=int, default=128, help="images per step (default: 128, the seed's)")
    args = ap.parse_args()
    if min(args.threads, args.steps, args.batch) < 1:
        sys.exit("Error: --threads, --steps and --batch must be at least 1")

    from gentk_gan.networks import Discriminator, Generator

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    gen, disc = Generator(), Discriminator()
    g_opt = torch.optim.Adam(gen.parameters(), 1e-3, betas=(0.5, 0.999), fused=True)
    d_opt = torch.optim.Adam(disc.parameters(), 1e-3, betas=(0.5, 0.999), fused=True)
    n = args.batch
    real = torch.randn(n, 1, 28, 28)

    def step(freeze: bool, cat: bool) -> None:
        with torch.no_grad():
            fake = gen(torch.randn(n, 64))
        if cat:
            logits = disc(torch.cat([real, fake]))
            d_loss = bce(logits[:n], 1.0) + bce(logits[n:], 0.0)
        else:
            d_loss = bce(disc(real), 1.0) + bce(disc(fake), 0.0)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        disc.requires_grad_(not freeze)
        g_loss = bce(disc(gen(torch.randn(n, 64))), 1.0)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        disc.requires_grad_(True)

    for name, kw in [("no freeze", dict(freeze=False, cat=False)), ("freeze", dict(freeze=True, cat=False)),
                     ("freeze + cat", dict(freeze=True, cat=True))]:
        for _ in range(5):
            step(**kw)
        started = time.perf_counter()
        for _ in range(args.steps):
            step(**kw)
        print(f"{name:>13}: {(time.perf_counter() - started) / args.steps * 1000:.1f} ms/step")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step(freeze=True, cat=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
