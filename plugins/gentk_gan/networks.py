"""The seed report's GAN networks for 1x28x28 images in [-1, 1] (section 2-1)."""

from __future__ import annotations

from torch import nn


class Discriminator(nn.Module):
    """1,640,033 parameters; returns one logit per image."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
            nn.Linear(512, 1),
        )

    def forward(self, x):
        return self.model(x)


class Generator(nn.Module):
    """1,654,121 parameters with noise_dim 64; PixelShuffle up-sampling, Tanh output."""

    def __init__(self, noise_dim: int = 64, channels: int = 1):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(noise_dim, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 64 * 7 * 7), nn.BatchNorm1d(64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.PixelShuffle(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.PixelShuffle(2),
            nn.Conv2d(8, channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z)
