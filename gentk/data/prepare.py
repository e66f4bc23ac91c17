"""Fit images to a model (size, channels), keep them on the device, and draw shuffled batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..model import Batch

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def fit_images(images: np.ndarray, size: int, channels: int, fit: str = "resize",
               chunk: int = 4096) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x channels x size x size.

    "pad" centres smaller images with zeros (MNIST 28 -> 32 for SSGAN);
    "resize" is bilinear with antialiasing, rounded back to uint8 as an image
    library would, so the data a model sees are real 8-bit images.
    """
    x = torch.from_numpy(np.ascontiguousarray(images))
    n, c, h, w = x.shape
    out = []
    for start in range(0, n, chunk):
        part = x[start:start + chunk]
        if c != channels:
            part = _convert_channels(part, channels)
        if (h, w) != (size, size):
            part = _pad(part, size) if fit == "pad" and h <= size and w <= size else _resize(part, size)
        out.append(part)
    return torch.cat(out) if out else x


def _convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
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


class DeviceImages:
    """uint8 images (and their labels) living on the device; batches come out as :class:`Batch`
    objects with float images in a value range."""

    def __init__(self, images: torch.Tensor, device: torch.device, value_range: str,
                 labels: torch.Tensor | None = None, num_classes: int | None = None):
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64) if labels is not None else None
        self.num_classes = num_classes if labels is not None else None
        self.value_range = value_range

    def __len__(self) -> int:
        return self.images.shape[0]

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0
        return x * 2 - 1 if self.value_range == "symmetric" else x

    def _batch(self, index) -> Batch:
        labels = self.labels[index] if self.labels is not None else None
        return Batch(self.to_float(self.images[index]), labels, self.num_classes)

    def batch(self, indices: torch.Tensor) -> Batch:
        return self._batch(indices.to(self.images.device))

    def batches(self, batch_size: int, limit: int | None = None):
        """Consecutive batches in order (held-out evaluation)."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            yield self._batch(slice(start, min(start + batch_size, n)))


@dataclass
class BatchStream:
    """Shuffled batch indices, epoch after epoch, resumable from (epoch, cursor).

    Each epoch's order is a function of (seed, epoch) alone, so a resumed run
    needs only the position to continue exactly where it stopped. Under
    torchrun every rank computes the same order and takes its own slice of each
    global batch (``world`` x ``batch_size`` images): rank r of step i sees what
    a single process with a ``world`` times larger batch would see in rows
    [r*batch_size, (r+1)*batch_size) of its batch i.
    """

    size: int
    batch_size: int
    seed: int
    epoch: int = 0
    cursor: int = 0
    rank: int = 0
    world: int = 1

    def __post_init__(self):
        if self.size < 1:
            raise UsageError("the dataset is empty")
        self._order = None
        self._order_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        if self.world > 1:
            # Ranks must see equal batches for the gradient average to be the big batch's gradient.
            full = self.size // (self.batch_size * self.world)
            if full == 0:
                raise UsageError(f"{self.size} training images cannot fill one batch of {self.batch_size} "
                                 f"on each of {self.world} processes; use a smaller --batch-size")
            return full
        full, rest = divmod(self.size, self.batch_size)
        # A last batch of one image would break BatchNorm; it is dropped.
        return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)

    def order(self) -> torch.Tensor:
        if self._order_epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(self.size, generator=g)
            self._order_epoch = self.epoch
        return self._order

    def next(self) -> torch.Tensor:
        start = (self.cursor * self.world + self.rank) * self.batch_size
        indices = self.order()[start:start + self.batch_size]
        self.cursor += 1
        if self.cursor >= self.batches_per_epoch:
            self.epoch += 1
            self.cursor = 0
        return indices

    def position(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}
