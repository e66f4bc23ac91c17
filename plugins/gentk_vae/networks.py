"""The seed report's VAE for 1x64x64 images (829,077 parameters with dim_z = 10)."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, dim_z: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 256, 4), nn.ReLU(),
        )
        self.fc1 = nn.Linear(256, 256)
        self.mean = nn.Linear(256, dim_z)
        self.logvar = nn.Linear(256, dim_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc1(self.conv(x).flatten(1))
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    def __init__(self, dim_z: int):
        super().__init__()
        self.fc2 = nn.Linear(dim_z, 256)
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(256, 64, 4), nn.ReLU(),
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of a 1x64x64 image."""
        return self.conv(self.fc2(z).view(z.shape[0], -1, 1, 1))
