"""Training throughput: the seed report's loops against gentk's engine, same networks, same batches.

For each model, in one process and alternating (seed, gentk, seed, gentk, ...)
so that machine noise hits both alike:

- the seed's loop as the report writes it (SEED.md): a DataLoader with
  shuffle=True over the preprocessed image tensor, one optimizer step per
  batch (the VAE listing's dedented step fixed), and every loss pulled to the
  host each step with `.cpu().detach().numpy()` into Python lists; the
  ControlVAE's Beta_Calculator on Python floats; WGAN's clipping loop;
- `gentk.train` with the same model (built by the same plugin, so the same
  networks and losses), batch size, optimizer and device.

Throughput is training images per second in steady state, measured in short
windows of a few steps: the seed loop's windows are timed around its steps,
gentk's are the images_per_sec rows it writes into metrics.jsonl (one per
--log-every window); each side's first window (warm-up) is dropped. These
machines are noisy (a side's speed moves by 20% between rounds), so each side
is summarised by the median of its windows over all rounds. Neither side's
data preparation, start-up or final checkpoint is counted. A "step" is one update of every
network (WGAN: n_critic critic updates and one generator update).

Usage: python benchmarks/train_speed.py [--models gan,vae,...] [--device cpu] [--precision fp32]
       [--rounds 2] [--scale 1.0] [--batch-scale 1] [--compile [--compile-mode reduce-overhead]]
Prints a table and appends JSON rows to benchmarks/results/train_speed.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import describe  # this folder's machine.py: one machine description
from torch.utils.data import DataLoader

from gentk import __version__
from gentk.config import COMPILE_MODES, resolve_device
from gentk.data import fit_images, load_dataset
from gentk.engine import train
from gentk.options import option_defaults
from gentk.plugins import get_registry

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "train_speed.jsonl"

# model: (batch size, timed steps per round, steps per window). SSGAN runs at batch 16 on
# the CPU (one seed step at 64 takes ~20 s there); the same batch for both sides.
SETTINGS = {
    "vae": (64, 60, 5),
    "controlvae": (64, 60, 5),
    "gan": (128, 80, 10),
    "wgan": (128, 6, 1),
    "ssgan": (16, 6, 1),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device, precision):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


# -- the seed's loops -------------------------------------------------------------------

def seed_vae_step(model, opt, x, logs, controller=None):
    out, mean, logvar = model(x)
    std = torch.exp(0.5 * logvar)
    reconstruction_loss = torch.sum(torch.mean(F.binary_cross_entropy_with_logits(out, x, reduction="none"), dim=0))
    kl_loss = torch.mean(0.5 * torch.sum(std.pow(2) + mean.pow(2) - 2 * std.log() - 1, dim=1))
    beta = 1.0
    if controller is not None:
        beta = controller(kl_loss.item())
    loss = reconstruction_loss + beta * kl_loss
    logs[0].append(reconstruction_loss.cpu().detach().numpy())
    logs[1].append(kl_loss.cpu().detach().numpy())
    logs[2].append(loss.cpu().detach().numpy())
    opt.zero_grad()
    loss.backward()
    opt.step()


class BetaCalculator:
    """The report's Beta_Calculator (Kp 0.01, Ki 0.001, beta in [1, 50]), on Python floats."""

    def __init__(self, target):
        self.target, self.kp, self.ki, self.beta_min, self.beta_max = target, 0.01, 0.001, 1.0, 50.0
        self.beta, self.i = 0.0, 0.0

    def __call__(self, kl):
        e = self.target - kl
        p = self.kp / (1 + np.exp(e))
        if self.beta_min < self.beta <= self.beta_max:
            self.i = self.i - self.ki * e
        self.beta = float(np.clip(p + self.i + self.beta_min, self.beta_min, self.beta_max))
        return self.beta


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def seed_gan_step(model, opts, x, logs, noise_dim):
    d_opt, g_opt = opts
    z = torch.randn(x.shape[0], noise_dim, device=x.device)
    fake = model.generator(z).detach()
    d_loss = bce(model.discriminator(x), 1.0) + bce(model.discriminator(fake), 0.0)
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    z = torch.randn(x.shape[0], noise_dim, device=x.device)
    g_loss = bce(model.discriminator(model.generator(z)), 1.0)
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
    logs[0].append(d_loss.cpu().detach().numpy())
    logs[1].append(g_loss.cpu().detach().numpy())


def seed_wgan_critic_step(model, c_opt, x, logs, noise_dim, clip):
    z = torch.randn(x.shape[0], noise_dim, device=x.device)
    fake = model.generator(z).detach()
    c_loss = -torch.mean(model.discriminator(x)) + torch.mean(model.discriminator(fake))
    c_opt.zero_grad()
    c_loss.backward()
    c_opt.step()
    for p in model.discriminator.parameters():
        p.data.clamp_(-clip, clip)
    logs[0].append(c_loss.cpu().detach().numpy())


def seed_wgan_generator_step(model, g_opt, n, device, logs, noise_dim):
    z = torch.randn(n, noise_dim, device=device)
    g_loss = -torch.mean(model.discriminator(model.generator(z)))
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
    logs[1].append(g_loss.cpu().detach().numpy())


def seed_ssgan_step(model, opts, x, logs, noise_dim, alpha, beta):
    from gentk_ssgan import rotate_batch

    d_opt, g_opt = opts

    def scores(images):
        rotated, labels = rotate_batch(images)
        realfake, rotation = model.discriminator(rotated)
        return realfake[::4], rotation, labels

    z = torch.randn(x.shape[0], noise_dim, device=x.device)
    fake = model.generator(z).detach()
    real_logit, real_rot, labels = scores(x)
    fake_logit, fake_rot, _ = scores(fake)
    d_loss = (bce(real_logit, 1.0) + bce(fake_logit, 0.0)
              + alpha * (F.cross_entropy(real_rot, labels) + F.cross_entropy(fake_rot, labels)))
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    z = torch.randn(x.shape[0], noise_dim, device=x.device)
    fake_logit, fake_rot, labels = scores(model.generator(z))
    g_loss = bce(fake_logit, 1.0) + beta * F.cross_entropy(fake_rot, labels)
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
    logs[0].append(d_loss.cpu().detach().numpy())
    logs[1].append(g_loss.cpu().detach().numpy())


def seed_images_per_sec(name, images, device, batch, steps, window, precision, lr) -> list[float]:
    """The seed's loop: one warm-up window, then ``steps`` steps timed per window; images/s per window."""
    registry = get_registry()
    spec = registry.spec(name)
    torch.manual_seed(0)
    model = registry.build_model(spec, option_defaults(spec.options)).to(device).train()
    o = model.options
    loader = DataLoader(images, batch_size=batch, shuffle=True, drop_last=True)
    logs = ([], [], [])
    batches = iter(loader)

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    if name in ("vae", "controlvae"):
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        controller = BetaCalculator(o.target_kl) if name == "controlvae" else None
        step = lambda: seed_vae_step(model, opt, next_batch(), logs, controller)  # noqa: E731
        per_step = batch
    elif name == "gan":
        opts = [torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.999)) for m in (model.discriminator, model.generator)]
        step = lambda: seed_gan_step(model, opts, next_batch(), logs, o.noise_dim)  # noqa: E731
        per_step = batch
    elif name == "wgan":
        c_opt = torch.optim.RMSprop(model.discriminator.parameters(), lr=lr)
        g_opt = torch.optim.RMSprop(model.generator.parameters(), lr=lr)

        def step():
            for _ in range(o.n_critic):
                seed_wgan_critic_step(model, c_opt, next_batch(), logs, o.noise_dim, o.clip)
            seed_wgan_generator_step(model, g_opt, batch, device, logs, o.noise_dim)
        per_step = batch * o.n_critic
    elif name == "ssgan":
        opts = [torch.optim.Adam(m.parameters(), lr=lr, betas=(o.adam_beta1, o.adam_beta2))
                for m in (model.discriminator, model.generator)]
        step = lambda: seed_ssgan_step(model, opts, next_batch(), logs, o.noise_dim, o.alpha, o.beta)  # noqa: E731
        per_step = batch
    else:
        raise SystemExit(f"no seed loop for {name}")
    rates = []
    with autocast(device, precision):
        for _ in range(window):
            step()
        for _ in range(max(1, steps // window)):
            sync(device)
            start = time.perf_counter()
            for _ in range(window):
                step()
            sync(device)
            rates.append(window * per_step / (time.perf_counter() - start))
    return rates


def gentk_images_per_sec(name, device, batch, steps, window, precision, workdir: Path, round_no: int,
                         compile: bool = False, compile_mode: str = "default") -> list[float]:
    """gentk.train for one warm-up window + ``steps`` steps, logging every ``window`` steps; images/s per window.

    With ``compile`` the networks are torch.compiled (``--compile``); compilation happens in the
    warm-up window, which is dropped."""
    run_dir = workdir / f"{name}-{round_no}"
    train(name, run_dir, max_steps=window + steps, batch_size=batch, device=str(device), log_every=window,
          sample_every=10**9, checkpoint_every=10**9, precision=precision, progress=False, eval_limit=8,
          compile=compile, compile_mode=compile_mode)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["images_per_sec"] for r in rows if "images_per_sec" in r and "split" not in r and r["step"] > window]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vae,controlvae,gan,wgan,ssgan")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--rounds", type=int, default=4, help="Alternating seed/gentk rounds per model.")
    ap.add_argument("--scale", type=float, default=1.0, help="Multiply the timed steps (GPUs: 10).")
    ap.add_argument("--batch-scale", type=int, default=1, help="Multiply every batch size.")
    ap.add_argument("--compile", action="store_true",
                    help="Run gentk with --compile (torch.compile); the seed's loop stays eager, as written.")
    ap.add_argument("--compile-mode", default="default", choices=list(COMPILE_MODES),
                    help="gentk's --compile-mode (reduce-overhead: CUDA graphs on a GPU).")
    args = ap.parse_args()
    device = resolve_device(args.device)
    registry = get_registry()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gentk-speed-") as tmp:
        for name in args.models.split(","):
            batch, steps, window = SETTINGS[name]
            batch *= args.batch_scale
            steps = max(1, int(steps * args.scale))
            spec = registry.spec(name)
            build = registry.build_model(spec, option_defaults(spec.options))
            dataset = load_dataset("mnist", None)
            train_u8 = fit_images(dataset.train, build.image_size, build.channels, build.fit)
            if spec.defaults.data_fraction < 1:
                keep = int(round(len(train_u8) * spec.defaults.data_fraction))
                train_u8 = train_u8[:keep]
            images = train_u8.to(device).float() / 255
            if build.value_range == "symmetric":
                images = images * 2 - 1
            seed, ours = [], []
            for r in range(args.rounds):
                seed.append(seed_images_per_sec(name, images, device, batch, steps, window, args.precision,
                                                spec.defaults.lr))
                ours.append(gentk_images_per_sec(name, device, batch, steps, window, args.precision, Path(tmp), r,
                                                 compile=args.compile, compile_mode=args.compile_mode))
                print(f"  {name} round {r + 1}: seed median {np.median(seed[-1]):.1f} img/s, "
                      f"gentk median {np.median(ours[-1]):.1f} img/s", flush=True)
            s = float(np.median(np.concatenate(seed)))
            g = float(np.median(np.concatenate(ours)))
            row = {"model": name, "device": str(device), "precision": args.precision, "compile": args.compile,
                   "compile_mode": args.compile_mode if args.compile else None,
                   "batch_size": batch,
                   "timed_steps": steps, "window_steps": window, "rounds": args.rounds, "seed_images_per_sec": round(s, 1),
                   "gentk_images_per_sec": round(g, 1), "ratio": round(g / s, 3),
                   "windows": {"seed": [round(v, 1) for r in seed for v in r],
                               "gentk": [round(v, 1) for r in ours for v in r]},
                   "machine": describe(device),
                   "torch": torch.__version__, "gentk_version": __version__,
                   "date": time.strftime("%Y-%m-%d %H:%M")}
            rows.append(row)
            print(f"{name:11s} seed {s:8.1f} img/s   gentk {g:8.1f} img/s   ratio {g / s:5.2f}x", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
