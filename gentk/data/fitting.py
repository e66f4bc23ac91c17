"""Bring images of any size, shape and channel count to a model's square size and channels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..model import FITS
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def fit_images(images: np.ndarray, size: int, channels: int, fit: str = "crop",
               chunk: int = 4096) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x channels x size x size, in chunks (bounded memory).

    Resizing is bilinear with antialiasing, rounded back to uint8 as an image
    library would, so the data a model sees are real 8-bit images. On square
    images crop and resize are the same.
    """
    x = torch.from_numpy(np.ascontiguousarray(images))
    out = [fit_tensor(x[start:start + chunk], size, channels, fit) for start in range(0, x.shape[0], chunk)]
    return torch.cat(out) if out else x


def fit_tensor(x: torch.Tensor, size: int, channels: int, fit: str) -> torch.Tensor:
    """One batch of same-sized uint8 images, fitted."""
    if fit not in FITS:
        raise UsageError(f"--fit must be one of {', '.join(FITS)} (got {fit!r})")
    if x.shape[1] != channels:
        x = convert_channels(x, channels)
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if fit == "crop" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[..., top:top + side, left:left + side]
    elif fit == "pad":
        side = max(h, w)
        if side <= size:
            return _pad(x, size)
        x = _pad(x, side)
    return _resize(x, size) if x.shape[-2:] != (size, size) else x


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == 3 and channels == 1:
        gray = (x.float() * _LUMA).sum(1, keepdim=True)
        return gray.round().clamp(0, 255).to(torch.uint8)
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    raise UsageError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


def _pad(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)
