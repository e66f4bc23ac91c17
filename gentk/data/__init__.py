"""Datasets: find and verify them, fit them to a model, and serve shuffled batches on the device."""

from .dataset import Dataset
from .prepare import BatchStream, DeviceImages, fit_images
from .loading import load_dataset, parse_data_spec
from .spec import DatasetSpec

__all__ = ["BatchStream", "Dataset", "DatasetSpec", "DeviceImages", "fit_images", "load_dataset",
           "parse_data_spec"]
