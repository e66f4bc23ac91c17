"""Keep fitted images on the device and draw shuffled batches of them."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from ..model import Batch
from .fitting import fit_images  # noqa: F401 - where gentk < 0.3 had it


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

    streamed = False  # the images are all on the device; nothing to read ahead

    def prefetch(self, indices: torch.Tensor) -> None:
        """Say which batch comes next (images already on the device need nothing)."""

    def batches(self, batch_size: int, limit: int | None = None):
        """Consecutive batches in order (held-out evaluation)."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            yield self._batch(slice(start, min(start + batch_size, n)))


class StreamedImages(DeviceImages):
    """Images that stay where they are (the on-disk cache, or an array in RAM) and reach the
    device one batch at a time, the next batch read while the current one trains (pinned on CUDA).

    ``rows`` picks (and orders) the images used (``--data-fraction``); batch indices are
    positions in it, exactly as DeviceImages' are, so a run draws the same images either way.
    """

    def __init__(self, source, device: torch.device, value_range: str, labels: torch.Tensor | None = None,
                 num_classes: int | None = None, rows: np.ndarray | None = None):
        self.source, self.device, self.value_range = source, device, value_range
        self.rows = rows
        self.labels = labels.to(device=device, dtype=torch.int64) if labels is not None else None
        self.num_classes = num_classes if labels is not None else None
        self._pin = device.type == "cuda"
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gentk-prefetch")
        self._pending: tuple[np.ndarray, Future] | None = None

    streamed = True

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.source)

    def _read(self, positions: np.ndarray) -> torch.Tensor:
        rows = self.rows[positions] if self.rows is not None else positions
        array = self.source.read(rows) if hasattr(self.source, "read") else self.source[rows]
        images = torch.from_numpy(array)
        return images.pin_memory() if self._pin else images

    def _batch(self, index) -> Batch:
        if isinstance(index, slice):
            positions = np.arange(index.start, index.stop)
        else:
            positions = index.cpu().numpy().astype(np.int64)
        pending, self._pending = self._pending, None
        if pending is not None and np.array_equal(pending[0], positions):
            images = pending[1].result()
        else:
            images = self._read(positions)
        labels = self.labels[torch.from_numpy(positions).to(self.labels.device)] if self.labels is not None else None
        return Batch(self.to_float(images.to(self.device, non_blocking=self._pin)), labels, self.num_classes)

    def batch(self, indices: torch.Tensor) -> Batch:
        return self._batch(indices)

    def prefetch(self, indices: torch.Tensor) -> None:
        positions = indices.cpu().numpy().astype(np.int64)
        self._pending = (positions, self._reader.submit(self._read, positions))

    def close(self) -> None:
        self._reader.shutdown(wait=True)


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

    def peek(self) -> torch.Tensor:
        """The indices the next :meth:`next` returns, without moving (for prefetching)."""
        saved = (self.epoch, self.cursor)
        try:
            return self.next()
        finally:
            self.epoch, self.cursor = saved

    def position(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}
