"""A dataset as gentk holds it: uint8 images of both splits, their labels, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FittedData:
    """Both splits at a model's size and channels: uint8 arrays in memory, or
    :class:`~gentk.data.diskimages.DiskImages` on disk (read batch by batch)."""

    train: object
    test: object
    train_labels: np.ndarray | None
    test_labels: np.ndarray | None
    #: How the images were fitted and where they come from ("decoded into the cache", "from cache").
    note: str = ""

    @property
    def nbytes(self) -> int:
        """Decoded bytes of both splits (the test split once when it is the training images)."""
        return self.train.nbytes + (0 if self.test is self.train else self.test.nbytes)


@dataclass
class Dataset:
    """Images as uint8 N x C x H x W, both splits, and where they came from.

    ``train_labels``/``test_labels`` are integer class indices in
    ``[0, num_classes)`` where the source has them (MNIST, Fashion-MNIST, class
    subfolders), else None; ``class_names`` names each index.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    source: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    class_names: list[str] | None = None

    #: What the data are, for --resume to notice they changed (a folder's file list); None: fixed data.
    fingerprint = None
    #: The --data value that names the same data from any working folder, where ``name`` may not
    #: (a relative folder path); None: ``name`` is that already.
    data_name = None

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        if self.train_labels is None:
            return None
        labels = [a for a in (self.train_labels, self.test_labels) if a is not None and len(a)]
        return int(max(int(a.max()) for a in labels)) + 1 if labels else None

    @property
    def channels(self) -> int:
        """1 if the data are grayscale, 3 if they have colour."""
        return max(self.train.shape[1], self.test.shape[1])

    def fitted(self, size: int, channels: int, fit: str, console=None, progress: bool = True) -> FittedData:
        """Both splits at ``size`` x ``size`` with ``channels``, fitted as ``fit`` says."""
        from .fitting import fit_images

        train = fit_images(self.train, size, channels, fit).numpy()
        test = train if self.test is self.train else fit_images(self.test, size, channels, fit).numpy()
        c, h, w = self.train.shape[1:]
        note = "" if (c, h, w) == (channels, size, size) else f"{c}x{h}x{w} fitted to {channels}x{size}x{size} ({fit})"
        return FittedData(train, test, self.train_labels, self.test_labels, note)
