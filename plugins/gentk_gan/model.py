"""A generator/discriminator pair as a gentk model, shared by the GAN and WGAN plugins."""

from __future__ import annotations

import copy

import torch

from gentk import GenerativeModel

from .networks import Discriminator, Generator


class GANPair(GenerativeModel):
    """The seed's networks on images in [-1, 1] (28x28 unless ``options.image_size`` says otherwise,
    one channel unless ``options.channels``); subclasses say how to train them.

    With ``options.ema > 0`` an exponential moving average of the generator
    (``generator_ema``) is kept and used for samples, grids and FID; a
    subclass calls :meth:`update_ema` after each generator step.

    Other networks: set ``generator_class`` and ``discriminator_class``
    (built as ``cls(noise_dim, channels, image_size)`` and
    ``cls(channels, image_size)``), as the SSGAN plugin does.
    """

    image_size = 28
    channels = 1
    value_range = "symmetric"
    fit = "crop"
    generator_class = Generator
    discriminator_class = Discriminator

    def __init__(self, options):
        super().__init__(options)
        self.generator = self.generator_class(options.noise_dim, self.channels, self.image_size)
        self.discriminator = self.discriminator_class(self.channels, self.image_size)
        self.generator_ema = None
        if getattr(options, "ema", 0.0) > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.options.noise_dim, generator=generator)

    def fake(self, n: int) -> torch.Tensor:
        """A batch of generated images for training (noise from the global RNG)."""
        z = torch.randn(n, self.options.noise_dim, device=next(self.generator.parameters()).device)
        return self.generator(z)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return net(noise)

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        decay = self.options.ema
        for avg, live in zip(self.generator_ema.parameters(), self.generator.parameters()):
            avg.lerp_(live, 1 - decay)
        for avg, live in zip(self.generator_ema.buffers(), self.generator.buffers()):
            avg.copy_(live)
