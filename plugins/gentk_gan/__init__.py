"""gentk's built-in GAN plugin: the seed's non-saturating GAN on MNIST (section 2-1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gentk import ModelSpec, Phase, TrainDefaults, hookimpl, option
from gentk.options import channels_option, image_size_option
from gentk.optim import fast

from .model import GANPair
from .networks import IMAGE_SIZES, Discriminator, Generator

__all__ = ["IMAGE_SIZES", "Discriminator", "GANModel", "GANOptions", "GANPair", "Generator", "bce"]


@dataclass
class GANOptions:
    noise_dim: int = option(64, "Size of the generator's input noise.", min=1, max=4096)
    adam_beta1: float = option(0.5, "Adam beta1 for both networks.", min=0, below=1)
    adam_beta2: float = option(0.999, "Adam beta2 for both networks.", min=0, below=1)
    ema: float = option(0.0, "Decay of an exponential moving average of the generator used for samples "
                             "(0 = off; 0.999 is typical).", min=0, below=1)
    r1: float = option(0.0, "Weight gamma of the R1 penalty on the discriminator, gamma/2 * |grad D(real)|^2 "
                            "(Mescheder et al. 2018; 0 = off, the seed's).", min=0)
    image_size: int = image_size_option(IMAGE_SIZES, 28)
    channels: int | None = channels_option()


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GANModel(GANPair):
    def phases(self, lr: float):
        betas = (self.options.adam_beta1, self.options.adam_beta2)
        adam = lambda params: fast(torch.optim.Adam, params, lr=lr, betas=betas)  # noqa: E731
        return [Phase("discriminator", ["discriminator"], adam),
                Phase("generator", ["generator"], adam, uses_data=False)]

    def compute_loss(self, phase, batch, state):
        if phase == "discriminator":
            real = batch.images
            with torch.no_grad():  # D needs the fakes, not G's graph: no activations kept for backward
                fake = self.fake(real.shape[0])
            r1 = self.options.r1
            if r1 > 0:
                real = real.detach().requires_grad_(True)
            real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
            loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
            metrics = {"real_prob": torch.sigmoid(real_logits).mean(), "fake_prob": torch.sigmoid(fake_logits).mean()}
            if r1 > 0:
                # The gradient's own graph is kept (create_graph) so the penalty trains D.
                (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                penalty = grad.float().pow(2).flatten(1).sum(1).mean()
                loss = loss + r1 / 2 * penalty
                metrics["r1_penalty"] = penalty
            return {"loss": loss, **metrics}
        fake_logits = self.discriminator(self.fake(state.batch_size))
        return {"loss": bce(fake_logits, 1.0)}

    def on_step(self, phase, state, metrics):
        if phase == "generator":
            self.update_ema()


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="gan",
        model=GANModel,
        options=GANOptions,
        defaults=TrainDefaults(epochs=10, batch_size=128, lr=1e-3),
        description="Non-saturating GAN with BCE losses; 28x28 MNIST by default (seed section 2-1)",
        # The seed's 10 epochs and networks: samples from an EMA of the generator, the rate
        # decayed to 0, and an R1 penalty that keeps the twos the seed's GAN under-draws
        # (docs/models.md "Presets"; measured in docs/results.md).
        presets={"quality": {"ema": 0.999, "lr_schedule": "cosine", "r1": 0.2}},
    ))
