"""Feature extraction under torchrun: each rank extracts its share of the images, every rank gets all rows."""

from __future__ import annotations

import numpy as np
import torch

from ..distributed import Distributed


class ShardedExtractor:
    """Wraps a feature extractor (Inception or the MNIST classifier) for a torchrun job.

    Rank r extracts the r-th contiguous chunk of every image set; the features
    (and the classifier's class probabilities) are all-gathered in rank order,
    so every rank holds exactly the rows one process would have computed, and
    the statistics, the cache key and the score are the same as one process's.
    """

    def __init__(self, inner, dist: Distributed):
        self.inner = inner
        self.dist = dist
        self.last_probs = None

    def __getattr__(self, name):  # dims, weights, device, images_per_second, ...
        return getattr(self.inner, name)

    def __call__(self, images: torch.Tensor, label: str = "features") -> np.ndarray:
        n, world, rank = images.shape[0], self.dist.world, self.dist.rank
        bounds = [n * r // world for r in range(world + 1)]
        mine = self.inner(images[bounds[rank]:bounds[rank + 1]], label=label)
        features = self.dist.gather_rows(torch.from_numpy(mine)).numpy()
        probs = getattr(self.inner, "last_probs", None)
        if probs is not None:
            self.last_probs = self.dist.gather_rows(torch.from_numpy(probs)).numpy()
        return features
