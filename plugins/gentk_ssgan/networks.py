"""The seed report's SSGAN networks (section 2-3), for 32x32 (the seed's) or 64x64 images, 1 or 3 channels.

At 64x64 the generator has a fourth up-sampling residual block (4 -> 64) and the
discriminator a third down-sampling one (64 -> 33 -> 17 -> 9); the discriminator
sums over space, so its heads are the same at both sizes.

One listing error is fixed: G_Residual's second convolution takes
``out_channels`` inputs (the listing wrote ``in_channels``; equal here, so the
parameter counts are the seed's: generator 4,074,753, discriminator 1,084,805).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm

#: The sizes the networks are defined for (``--image-size``).
IMAGE_SIZES = (32, 64)


def up_blocks(image_size: int) -> int:
    """Residual blocks that double 4x4 to the image size."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES} (got {image_size})")
    return {32: 3, 64: 4}[image_size]


class GResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 256):
        super().__init__()
        self.main = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.shortcut = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class Generator(nn.Module):
    def __init__(self, noise_dim: int = 128, channels: int = 1, image_size: int = 32):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(noise_dim, 256 * 4 * 4),
            nn.Unflatten(1, (256, 4, 4)),
            nn.BatchNorm2d(256),
            *(GResidual(256, 256) for _ in range(up_blocks(image_size))),
            nn.ReLU(),
            nn.Conv2d(256, channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z)


class DResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, start: bool = False, down: bool = False):
        super().__init__()
        self.start, self.down = start, down
        self.main = nn.Sequential(
            spectral_norm(nn.Conv2d(in_channels, out_channels, 3, 1, 1)), nn.ReLU(),
            spectral_norm(nn.Conv2d(out_channels, out_channels, 3, 1, 1)),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(2, 2, padding=1)

    def forward(self, x):
        # The seed applies ReLU after the first block's main path, before the others'.
        main = self.relu(self.main(x)) if self.start else self.main(self.relu(x))
        if self.down:
            main, x = self.pool(main), self.pool(x)
        return main + self.shortcut(x)


class Discriminator(nn.Module):
    """Returns (real/fake logit, 4 rotation logits) per image; 32 -> 17 -> 9 spatially."""

    def __init__(self, channels: int = 1, image_size: int = 32):
        super().__init__()
        extra_down = up_blocks(image_size) - 3
        self.model = nn.Sequential(
            DResidual(channels, 128, start=True, down=True),
            *(DResidual(128, 128, down=True) for _ in range(1 + extra_down)),
            DResidual(128, 128),
            DResidual(128, 128),
            nn.ReLU(),
        )
        self.fc1 = nn.Linear(128, 1)
        self.fc2 = nn.Linear(128, 4)

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.model(x).sum(dim=(2, 3))
        return self.fc1(h), self.fc2(h)
