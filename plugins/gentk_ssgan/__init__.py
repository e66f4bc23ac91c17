"""gentk's built-in SSGAN plugin: GAN with a self-supervised rotation task (seed section 2-3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gentk import ModelSpec, Phase, TrainDefaults, hookimpl, option
from gentk.optim import fast
from gentk.options import channels_option, image_size_option
from gentk_gan import bce
from gentk_gan.model import GANPair

from .networks import IMAGE_SIZES, Discriminator, Generator

__all__ = ["SSGANModel", "SSGANOptions", "rotate_batch"]


@dataclass
class SSGANOptions:
    noise_dim: int = option(128, "Size of the generator's input noise.", min=1, max=4096)
    alpha: float = option(0.25, "Weight of the discriminator's rotation loss.", min=0)
    beta: float = option(0.25, "Weight of the generator's rotation loss.", min=0)
    d_rotation_on_fake: bool = option(True, "Also train the discriminator's rotation head on generated "
                                            "images (the seed does; the SSGAN paper does not).")
    adam_beta1: float = option(0.9, "Adam beta1 for both networks.", min=0, below=1)
    adam_beta2: float = option(0.99, "Adam beta2 for both networks.", min=0, below=1)
    ema: float = option(0.0, "Decay of an exponential moving average of the generator used for samples "
                             "(0 = off; 0.999 is typical).", min=0, below=1)
    image_size: int = image_size_option(IMAGE_SIZES, 32)
    channels: int | None = channels_option()


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image at 0, 90, 180 and 270 degrees (counter-clockwise), interleaved as the seed:
    row 4*i + r is image i rotated r quarter turns, with label r."""
    rotated = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)], dim=1).flatten(0, 1)
    labels = torch.arange(4, device=x.device).repeat(x.shape[0])
    return rotated, labels


class SSGANModel(GANPair):
    """The GAN pair with SSGAN's networks (a rotation head on the discriminator): noise, fakes,
    sampling and the generator EMA are the pair's."""

    image_size = 32
    fit = "pad"  # MNIST 28x28 -> 32x32 with 2 black pixels per side, as the seed
    generator_class = Generator
    discriminator_class = Discriminator

    def phases(self, lr: float):
        betas = (self.options.adam_beta1, self.options.adam_beta2)
        adam = lambda params: fast(torch.optim.Adam, params, lr=lr, betas=betas)  # noqa: E731
        return [Phase("discriminator", ["discriminator"], adam),
                Phase("generator", ["generator"], adam, uses_data=False)]

    def on_step(self, phase, state, metrics):
        if phase == "generator":
            self.update_ema()

    def scores(self, x: torch.Tensor):
        """Real/fake logits of the upright images, rotation logits and labels of all four rotations."""
        rotated, labels = rotate_batch(x)
        realfake, rotation = self.discriminator(rotated)
        return realfake[::4], rotation, labels

    def compute_loss(self, phase, batch, state):
        o = self.options
        if phase == "discriminator":
            real = batch.images
            with torch.no_grad():  # D needs the fakes, not G's graph: no activations kept for backward
                fake = self.fake(real.shape[0])
            real_logit, real_rot, labels = self.scores(real)
            fake_logit, fake_rot, _ = self.scores(fake)
            gan = bce(real_logit, 1.0) + bce(fake_logit, 0.0)
            rotation = F.cross_entropy(real_rot, labels)
            if o.d_rotation_on_fake:
                rotation = rotation + F.cross_entropy(fake_rot, labels)
            accuracy = (real_rot.argmax(1) == labels).float().mean()
            return {"loss": gan + o.alpha * rotation, "gan": gan, "rotation": rotation, "rotation_acc": accuracy}
        fake_logit, fake_rot, labels = self.scores(self.fake(state.batch_size))
        gan, rotation = bce(fake_logit, 1.0), F.cross_entropy(fake_rot, labels)
        return {"loss": gan + o.beta * rotation, "gan": gan, "rotation": rotation}


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="ssgan",
        model=SSGANModel,
        options=SSGANOptions,
        defaults=TrainDefaults(epochs=45, batch_size=64, lr=6e-6, data_fraction=0.25),
        description="Self-supervised GAN with a rotation-prediction task, 32x32 by default (seed section 2-3)",
        presets={"paper": {"alpha": 1.0, "beta": 0.2, "lr": 2e-4, "adam_beta1": 0.0, "adam_beta2": 0.9,
                           "d_rotation_on_fake": False}},
    ))
