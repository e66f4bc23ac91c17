"""A dataset as gentk holds it: uint8 images of both splits, their labels, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        if self.train_labels is None:
            return None
        labels = [a for a in (self.train_labels, self.test_labels) if a is not None and len(a)]
        return int(max(int(a.max()) for a in labels)) + 1 if labels else None
