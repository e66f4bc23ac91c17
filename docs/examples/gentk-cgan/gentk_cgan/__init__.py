"""A class-conditional GAN as a gentk plugin: draw a digit of the class you ask for.

The generator sees the class through a learned embedding concatenated to its
noise; the discriminator is a projection discriminator (Miyato & Koyama 2018):
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``, so it judges "is this a real
image of class y", not only "is this real". Non-saturating BCE losses, Adam
(2e-4, betas 0.5/0.999), DCGAN-sized networks for 28x28 images, grayscale or RGB
(``channels`` below: gentk sets it to the data's, as for its own models).

Everything the model does is on the class: gentk calls ``compute_loss``,
``sample`` and friends through its hooks, so the plugin registers one
ModelSpec and implements no hook of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import gentk
from gentk import Batch, GenerativeModel, ModelSpec, Phase, TrainDefaults, option
from gentk.options import channels_option


@dataclass
class CGANOptions:
    noise_dim: int = option(64, "Size of the generator's input noise.", min=1, max=4096)
    num_classes: int = option(10, "Classes the model can draw (the data's labels must lie in 0 .. N-1).", min=1, max=100_000)
    embed_dim: int = option(16, "Size of the generator's class embedding.", min=1, max=4096)
    width: int = option(64, "Channels of the first discriminator layer (the generator mirrors it).", min=1, max=1024)
    channels: int | None = channels_option()  # None: gentk fills in the data's (1 or 3) before building


class Generator(nn.Module):
    def __init__(self, o: CGANOptions):
        super().__init__()
        w = o.width
        self.embed = nn.Embedding(o.num_classes, o.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(o.noise_dim + o.embed_dim, 2 * w * 7 * 7), nn.Unflatten(1, (2 * w, 7, 7)),
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(w, o.channels or 1, 4, 2, 1), nn.Tanh(),  # 14 -> 28
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], 1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, o: CGANOptions):
        super().__init__()
        w = o.width
        self.features = nn.Sequential(
            nn.Conv2d(o.channels or 1, w, 4, 2, 1), nn.LeakyReLU(0.2),  # 28 -> 14
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),  # 14 -> 7
            nn.Flatten(),
        )
        self.linear = nn.Linear(2 * w * 7 * 7, 1)
        self.embed = nn.Embedding(o.num_classes, 2 * w * 7 * 7)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(1)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class CGAN(GenerativeModel):
    image_size = 28
    channels = 1
    value_range = "symmetric"  # batches arrive in [-1, 1]; samples must be too
    fit = "crop"  # other sizes and shapes: the centred square, resized to 28x28
    conditional = True  # sample(noise, labels); gentk needs labelled data and balances grids and FID

    def __init__(self, options: CGANOptions):
        super().__init__(options)
        self.num_classes = options.num_classes
        self.generator = Generator(options)
        self.discriminator = ProjectionDiscriminator(options)

    def phases(self, lr):
        adam = lambda params: torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))  # noqa: E731
        return [Phase("discriminator", ["discriminator"], adam),
                Phase("generator", ["generator"], adam, uses_data=False)]

    def noise(self, n, generator):
        return torch.randn(n, self.options.noise_dim, generator=generator)

    def sample(self, noise, labels):
        return self.generator(noise, labels)

    def _fake(self, labels: torch.Tensor) -> torch.Tensor:
        """Generated images of the given classes (noise from the global RNG, which gentk checkpoints)."""
        z = torch.randn(labels.shape[0], self.options.noise_dim, device=labels.device)
        return self.generator(z, labels)

    def compute_loss(self, phase: str, batch: Batch | None, state):
        if phase == "discriminator":
            real, labels = batch.images, batch.labels
            with torch.no_grad():  # D needs fakes of the same classes, not G's graph
                fake = self._fake(labels)
            real_logits, fake_logits = self.discriminator(real, labels), self.discriminator(fake, labels)
            loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
            return {"loss": loss, "real_prob": torch.sigmoid(real_logits).mean(),
                    "fake_prob": torch.sigmoid(fake_logits).mean()}
        # The generator phase has no real batch: it draws its classes uniformly.
        device = next(self.parameters()).device
        labels = torch.randint(self.num_classes, (state.batch_size,), device=device)
        return {"loss": bce(self.discriminator(self._fake(labels), labels), 1.0)}


@gentk.hookimpl
def register_models(register):
    register(ModelSpec(
        name="cgan",
        model=CGAN,
        options=CGANOptions,
        defaults=TrainDefaults(epochs=5, batch_size=128, lr=2e-4),
        description="Class-conditional GAN with a projection discriminator; `gentk sample --label K` (example plugin)",
    ))
