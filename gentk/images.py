"""Images out: [0,1] floats -> uint8 exactly as torchvision.utils.save_image does, grids, PNGs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .fsutil import atomic_write_bytes, probe_writable


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W in [0, 1] -> uint8, rounding as save_image does (x*255 + 0.5, floor)."""
    return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def png_bytes(image: torch.Tensor) -> bytes:
    """One uint8 C x H x W image as PNG bytes."""
    array = image.permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def grid_image(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """Images in [0, 1] as one C x H x W grid in [0, 1] on the CPU (as saved in samples/)."""
    images = images.detach().float().cpu()
    nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
    return make_grid(images, nrow=nrow, padding=2, pad_value=1.0)


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> torch.Tensor:
    """Images in [0, 1] as one PNG grid, written atomically; returns the grid."""
    grid = grid_image(images, nrow)
    atomic_write_bytes(path, png_bytes(to_uint8(grid)))
    return grid


def save_pngs(images: torch.Tensor, folder: Path, start: int = 0) -> list[Path]:
    """Images in [0, 1] as numbered PNG files."""
    probe_writable(folder)  # a folder that cannot take files is one line before any image is made
    paths = []
    for i, image in enumerate(to_uint8(images.detach().float().cpu())):
        path = folder / f"{start + i:06d}.png"
        atomic_write_bytes(path, png_bytes(image))
        paths.append(path)
    return paths
