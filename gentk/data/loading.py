"""``--data NAME[:ARG]``: find the plugin that registered NAME, load, and check what it returned."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, PluginError, UsageError
from .dataset import Dataset


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
    except OSError as exc:  # the data itself is unreadable (a name too long, no permission): not a plugin bug
        raise DataError(f"cannot read --data {spec}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed to load dataset {name!r}: {type(exc).__name__}: {exc}") from exc
    return check_dataset(dataset, f"plugin {plugin!r}, dataset {name!r}")


def check_dataset(dataset, who: str) -> Dataset:
    """A dataset a plugin returned, checked before any of it reaches a model."""
    from .image_folder import FolderDataset

    if not isinstance(dataset, Dataset):
        raise PluginError(f"{who}: load returned a {type(dataset).__name__}, not a gentk.data.Dataset")
    if isinstance(dataset, FolderDataset):  # gentk's own listing, checked as it was made; pixels come later
        return dataset
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
