"""Datasets: find and verify them, fit them to a model, and serve shuffled batches on the device."""

from .prepare import BatchStream, DeviceImages, fit_images
from .sources import Dataset, load_dataset

__all__ = ["BatchStream", "Dataset", "DeviceImages", "fit_images", "load_dataset"]
