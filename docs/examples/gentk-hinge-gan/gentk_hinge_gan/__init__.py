"""A hinge-loss GAN (Lim & Ye 2017; Miyato et al. 2018) as a gentk plugin.

D minimises mean(relu(1 - D(real))) + mean(relu(1 + D(fake)));
G minimises -mean(D(fake)). Small DCGAN-style networks for 28x28 images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import gentk
from gentk import GenerativeModel, ModelSpec, Phase, TrainDefaults, option


@dataclass
class HingeGANOptions:
    noise_dim: int = option(64, "Size of the generator's input noise.")
    width: int = option(64, "Channels of the widest layer of both networks.")
    d_steps: int = option(1, "Discriminator updates per generator update.")


class HingeGAN(GenerativeModel):
    image_size = 28
    channels = 1
    value_range = "symmetric"  # batches arrive in [-1, 1]; samples must be too
    fit = "resize"

    def __init__(self, options: HingeGANOptions):
        super().__init__(options)
        w = options.width
        self.generator = nn.Sequential(
            nn.Linear(options.noise_dim, w * 7 * 7), nn.Unflatten(1, (w, 7, 7)), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, w // 2, 4, 2, 1), nn.BatchNorm2d(w // 2), nn.ReLU(),
            nn.ConvTranspose2d(w // 2, 1, 4, 2, 1), nn.Tanh(),
        )
        self.discriminator = nn.Sequential(
            nn.utils.spectral_norm(nn.Conv2d(1, w // 2, 4, 2, 1)), nn.LeakyReLU(0.2),
            nn.utils.spectral_norm(nn.Conv2d(w // 2, w, 4, 2, 1)), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.utils.spectral_norm(nn.Linear(w * 7 * 7, 1)),
        )

    def phases(self, lr):
        adam = lambda params: torch.optim.Adam(params, lr=lr, betas=(0.0, 0.9))  # noqa: E731
        return [Phase("discriminator", ["discriminator"], adam, repeat=self.options.d_steps),
                Phase("generator", ["generator"], adam, uses_data=False)]

    def noise(self, n, generator):
        return torch.randn(n, self.options.noise_dim, generator=generator)

    def sample(self, noise):
        return self.generator(noise)

    def fake(self, n):
        device = next(self.parameters()).device
        return self.generator(torch.randn(n, self.options.noise_dim, device=device))

    def compute_loss(self, phase, batch, state):
        if phase == "discriminator":
            real_score = self.discriminator(batch.images)
            fake_score = self.discriminator(self.fake(len(batch)).detach())
            loss = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
            return {"loss": loss, "real_score": real_score.mean(), "fake_score": fake_score.mean()}
        return {"loss": -self.discriminator(self.fake(state.batch_size)).mean()}


@gentk.hookimpl
def register_models(register):
    register(ModelSpec(
        name="hinge-gan",
        model=HingeGAN,
        options=HingeGANOptions,
        defaults=TrainDefaults(epochs=10, batch_size=64, lr=2e-4),
        description="Hinge-loss GAN with a spectrally normalised discriminator (example plugin)",
    ))
