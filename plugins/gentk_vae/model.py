"""The VAE as a gentk model: one phase, BCE reconstruction + beta * KL."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gentk import GenerativeModel, Phase, option
from gentk.options import channels_option, image_size_option
from gentk.optim import fast

from .networks import IMAGE_SIZES, Decoder, Encoder


def width_option(caution: str = ""):
    """The ``width`` option (``--width``) the VAE and the ControlVAE share."""
    return option(1, "Channel multiplier of the networks' strided convolutions, 1 to 16 (1 is the seed's network; 2 "
                     "costs about 2.5x the time per step)." + caution, min=1, max=16)


@dataclass
class VAEOptions:
    dim_z: int = option(10, "Size of the latent code.", min=1, max=4096)
    beta: float = option(1.0, "Constant weight of the KL term (1 is the plain VAE of the seed).", min=0)
    width: int = width_option()
    image_size: int = image_size_option(IMAGE_SIZES, 64)
    channels: int | None = channels_option()


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch."""
    return (0.5 * (logvar.exp() + mean.pow(2) - logvar - 1).sum(1)).mean()


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits summed over pixels, averaged over the batch (as the seed)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1).mean()


class VAEModel(GenerativeModel):
    image_size = 64
    channels = 1
    value_range = "unit"
    fit = "crop"
    progress_metrics = ("loss", "kl", "beta")

    def __init__(self, options: VAEOptions):
        super().__init__(options)
        self.encoder = Encoder(options.dim_z, self.channels, self.image_size, options.width)
        self.decoder = Decoder(options.dim_z, self.channels, self.image_size, options.width)

    def phases(self, lr: float) -> list[Phase]:
        return [Phase("vae", ["encoder", "decoder"], lambda params: fast(torch.optim.Adam, params, lr=lr))]

    def forward(self, x: torch.Tensor):
        mean, logvar = self.encoder(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, mean, logvar = self(x)
        return reconstruction_loss(logits, x), kl_divergence(mean, logvar)

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.options.dim_z, generator=generator)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(noise))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images decoded from the posterior mean (deterministic)."""
        mean, _ = self.encoder(x)
        return torch.sigmoid(self.decoder(mean))

    def grids(self, noise, real):
        recon = self.reconstruct(real.images)
        pairs = torch.stack([real.images, recon], 1).flatten(0, 1)  # original, reconstruction, ...
        return {"samples": self.sample(noise), "reconstructions": pairs}

    def compute_loss(self, phase, batch, state) -> dict:
        """recon + beta * KL, with beta from the adjust_beta hook for this batch's KL."""
        recon, kl = self.losses(batch.images)
        beta = state.adjust_beta(kl)
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "beta": beta}

    def adjust_beta(self, state, kl):
        return self.options.beta

    def evaluate(self, state, batches) -> dict:
        """Held-out recon, KL and loss (weighted by batch size) with the current beta."""
        totals = torch.zeros(2, dtype=torch.float64)
        count = 0
        for batch in batches:
            recon, kl = self.losses(batch.images)
            totals += torch.stack([recon, kl]).double().cpu() * len(batch)
            count += len(batch)
        if count == 0:
            return {}
        recon, kl = (totals / count).tolist()
        return {"recon": recon, "kl": kl, "loss": recon + state.beta * kl}
