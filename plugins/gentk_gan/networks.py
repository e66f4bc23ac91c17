"""The seed report's GAN networks (section 2-1), scaled to 28, 32 or 64 pixels and 1 or 3 channels.

At 28x28 with one channel they are the seed's: 2 PixelShuffle stages up from
7x7, two stride-2 convolutions down to 7x7. At 32 the same stages start from
8x8; at 64 each network gains one stage (PixelShuffle from 8x8, a third
stride-2 convolution down to 8x8), so the fully connected layers stay the
seed's size and only the convolutions grow with the image.
"""

from __future__ import annotations

from torch import nn

#: The sizes the networks are defined for (``--image-size``).
IMAGE_SIZES = (28, 32, 64)


def stages(image_size: int) -> int:
    """Times the image is halved (discriminator) or doubled (generator) between 7-8 pixels and full size."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES} (got {image_size})")
    return 3 if image_size == 64 else 2


class Discriminator(nn.Module):
    """1,640,033 parameters at 1x28x28; returns one logit per image."""

    def __init__(self, channels: int = 1, image_size: int = 28):
        super().__init__()
        n = stages(image_size)
        convs = [nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU()]
        convs += [layer for _ in range(n - 2) for layer in (nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU())]
        side = image_size >> n
        self.model = nn.Sequential(
            *convs,
            nn.Flatten(),
            nn.Linear(64 * side * side, 512), nn.ReLU(),
            nn.Linear(512, 1),
        )

    def forward(self, x):
        return self.model(x)


class Generator(nn.Module):
    """1,654,121 parameters with noise_dim 64 at 1x28x28; PixelShuffle up-sampling, Tanh output."""

    def __init__(self, noise_dim: int = 64, channels: int = 1, image_size: int = 28):
        super().__init__()
        n = stages(image_size)
        side = image_size >> n
        middle = [layer for _ in range(n - 2)
                  for layer in (nn.PixelShuffle(2), nn.Conv2d(8, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())]
        self.model = nn.Sequential(
            nn.Linear(noise_dim, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 64 * side * side), nn.BatchNorm1d(64 * side * side), nn.ReLU(),
            nn.Unflatten(1, (64, side, side)),
            nn.PixelShuffle(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            *middle,
            nn.PixelShuffle(2),
            nn.Conv2d(8, channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z)
