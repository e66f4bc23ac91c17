"""The seed report's VAE (829,077 parameters at 1x64x64 with dim_z = 10), at 32, 64 or 128 pixels.

The encoder halves the image with stride-2 convolutions down to 4x4, then a 4x4
convolution makes one 256-vector; the decoder mirrors it. The seed's 64x64 has
four halvings (32, 32, 64, 64 channels); 32x32 drops the second 32-channel
layer and 128x128 adds a fifth 64-channel one, so the fully connected layers
and the latent code are the same at every size. ``width`` multiplies the
channels of the stride-2 convolutions and their mirror images in the decoder
(1 is the seed's network; the 256-vector and the image's channels stay).
"""

from __future__ import annotations

import torch
from torch import nn

#: The sizes the networks are defined for (``--image-size``).
IMAGE_SIZES = (32, 64, 128)
_WIDTHS = {32: (32, 64, 64), 64: (32, 32, 64, 64), 128: (32, 32, 64, 64, 64)}


def widths(image_size: int, width: int = 1) -> tuple[int, ...]:
    """Channels of each stride-2 convolution, from the image inwards, times ``width``."""
    if image_size not in _WIDTHS:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES} (got {image_size})")
    return tuple(channels * width for channels in _WIDTHS[image_size])


class Encoder(nn.Module):
    def __init__(self, dim_z: int, channels: int = 1, image_size: int = 64, width: int = 1):
        super().__init__()
        layers, previous = [], channels
        for out in widths(image_size, width):
            layers += [nn.Conv2d(previous, out, 4, 2, 1), nn.ReLU()]
            previous = out
        self.conv = nn.Sequential(*layers, nn.Conv2d(previous, 256, 4), nn.ReLU())
        self.fc1 = nn.Linear(256, 256)
        self.mean = nn.Linear(256, dim_z)
        self.logvar = nn.Linear(256, dim_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc1(self.conv(x).flatten(1))
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    def __init__(self, dim_z: int, channels: int = 1, image_size: int = 64, width: int = 1):
        super().__init__()
        inner = list(reversed(widths(image_size, width)))
        layers = [nn.ReLU(), nn.ConvTranspose2d(256, inner[0], 4), nn.ReLU()]
        for previous, out in zip(inner, inner[1:]):
            layers += [nn.ConvTranspose2d(previous, out, 4, 2, 1), nn.ReLU()]
        self.fc2 = nn.Linear(dim_z, 256)
        self.conv = nn.Sequential(*layers, nn.ConvTranspose2d(inner[-1], channels, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of a channels x size x size image."""
        return self.conv(self.fc2(z).view(z.shape[0], -1, 1, 1))
