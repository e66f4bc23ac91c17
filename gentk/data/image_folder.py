"""``--data folder:PATH``: a folder of images as users have them, listed now and decoded once.

Layout (torchvision's ImageFolder, and splits): ``train/`` and ``test/``
subfolders give the splits, otherwise the held-out split is the training
images; class subfolders (no images directly in the folder) give labels, the
classes in sorted order. Images may have any size, aspect ratio and colour:
they are fitted to the model when decoded (:mod:`gentk.data.folder_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fsutil import atomic_write_text
from .dataset import Dataset, FittedData
from .folder import GRAY_MODES, IMAGE_SUFFIXES, decode_workers, image_mode


@dataclass
class Split:
    """One split's image files (sorted), their labels (None without class folders), and each
    file's (size, modification time) as listed."""

    paths: list[Path]
    labels: np.ndarray | None
    stats: list[tuple[int, int]]


def _walk_images(folder: Path) -> tuple[list[Path], list[tuple[int, int]], int]:
    """Image files under ``folder`` (sorted, recursive, hidden entries skipped), their stats, and
    how many other files there were."""
    images, stats, skipped = [], [], 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
                continue
            try:
                info = path.stat()
            except OSError:
                skipped += 1  # a dangling link: not an image we can read
                continue
            images.append(path)
            stats.append((info.st_size, info.st_mtime_ns))
    order = sorted(range(len(images)), key=lambda i: images[i])
    return [images[i] for i in order], [stats[i] for i in order], skipped


def class_folders(folder: Path) -> list[Path] | None:
    """torchvision's ImageFolder layout: no images directly in ``folder``, one subfolder per class.
    Images beside class folders are refused: silently dropping either the labels or the
    images would train on something other than what the user laid out."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    subfolders = sorted(p for p in entries if p.is_dir())
    loose = sorted(p.name for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not subfolders:
        return None
    if loose:
        raise DataError(f"{folder} has class subfolders ({', '.join(p.name for p in subfolders[:3])}"
                        f"{', ...' if len(subfolders) > 3 else ''}) and {len(loose)} image(s) beside them "
                        f"(first: {loose[0]}): move those into a class folder, or, for data without "
                        "classes, put all the images directly in the folder")
    return subfolders


def list_split(folder: Path, classes: list[str] | None = None) -> tuple[Split, list[str] | None, int]:
    """(split, class names or None, skipped non-image files) of one split's folder.

    With class subfolders, ``classes`` (the training split's names) fixes the label of each name;
    a class folder with no images is refused (it would be a class the model never sees)."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    subfolders = class_folders(folder)
    if subfolders is None:
        paths, stats, skipped = _walk_images(folder)
        return Split(paths, None, stats), None, skipped
    names = [p.name for p in subfolders]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(f"{folder} has class folder(s) {', '.join(unknown)} that the training split lacks")
        names = classes
    paths, stats, labels, skipped = [], [], [], 0
    for index, name in enumerate(names):
        if not (folder / name).is_dir():
            continue
        found, found_stats, skip = _walk_images(folder / name)
        if not found:
            raise DataError(f"class folder {folder / name} has no images; add some, or remove the folder")
        paths += found
        stats += found_stats
        labels += [index] * len(found)
        skipped += skip
    return Split(paths, np.asarray(labels, dtype=np.int64), stats), names, skipped


def fingerprint(folder: Path, splits: dict[str, Split]) -> str:
    """sha256 of what a run trains on: each file's split, label, path, size and modification time."""
    h = hashlib.sha256()
    for name, split in splits.items():
        labels = split.labels.tolist() if split.labels is not None else [None] * len(split.paths)
        for path, label, (size, mtime) in zip(split.paths, labels, split.stats):
            h.update(f"{name}\t{label}\t{path.relative_to(folder).as_posix()}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()


class FolderDataset(Dataset):
    """A listed image folder: labels and class names now, pixels when :meth:`fitted` decodes them
    (once, into the cache under $GENTK_HOME)."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        if folder.is_file():
            raise DataError(f"{folder} is a file; --data folder:PATH takes the folder that holds the images")
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist")
        train_dir, test_dir = folder / "train", folder / "test"
        # Whatever else could hold images (a README beside train/ changes nothing).
        others = [p for p in folder.iterdir() if not p.name.startswith(".") and p not in (train_dir, test_dir)
                  and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES)]
        if test_dir.is_dir() and not train_dir.is_dir() and not others:
            raise DataError(f"{folder} has test/ but no train/; add train/ (the images to train on), "
                            "or put all the images directly in the folder")
        if train_dir.is_dir() and not test_dir.is_dir() and not others:
            train, classes, skipped = list_split(train_dir)
            test, how = train, "train/ only (no test/: the test split is the same images)"
        elif train_dir.is_dir() and test_dir.is_dir():
            train, classes, skipped_train = list_split(train_dir)
            test, test_classes, skipped_test = list_split(test_dir, classes)
            if (classes is None) != (test_classes is None):
                raise DataError(f"{folder}: train/ and test/ must both have class subfolders, or neither")
            skipped, how = skipped_train + skipped_test, "train/ and test/"
        else:
            train, classes, skipped = list_split(folder)
            test, how = train, "one split (no train/ and test/ subfolders: the test split is the same images)"
        if not train.paths or not test.paths:
            raise DataError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self.folder = folder
        #: The --data value naming these files from any working folder (runs record it).
        self.data_name = f"folder:{folder.resolve()}"
        self.splits = {"train": train} if test is train else {"train": train, "test": test}
        self.fingerprint = fingerprint(folder, self.splits)
        note = f", {skipped} non-image file(s) skipped" if skipped else ""
        labelled = (f", {len(classes)} {'class' if len(classes) == 1 else 'classes'} from subfolders" if classes
                    else ", no labels (no class subfolders)")
        super().__init__(f"folder:{folder}", None, None,
                         f"folder {folder}: {len(train.paths)} train / {len(test.paths)} test images, {how}"
                         f"{labelled}{note}", train.labels, test.labels, classes)
        self._channels = None

    @property
    def same_split(self) -> bool:
        return "test" not in self.splits

    @property
    def channels(self) -> int:
        """3 if any image has colour, else 1: from the files' headers, remembered in the cache."""
        if self._channels is None:
            self._channels = scan_channels(self)
        return self._channels

    def fitted(self, size: int, channels: int, fit: str, console=None, progress: bool = True) -> FittedData:
        from .folder_cache import fitted_folder

        return fitted_folder(self, size, channels, fit, console, progress)


def read_image_folder(folder: Path) -> FolderDataset:
    return FolderDataset(Path(folder))


def _mode_or_none(path: Path) -> str | None:
    try:
        return image_mode(path)
    except DataError:
        return None  # counted when decoding, where it is skipped


def scan_channels(dataset: FolderDataset) -> int:
    """Whether any image of the folder has colour (header reads only), cached by the fingerprint."""
    from .folder_cache import cache_root

    record = cache_root(dataset) / "channels.json"
    try:
        value = json.loads(record.read_text())
        if value.get("fingerprint") == dataset.fingerprint and value.get("channels") in (1, 3):
            return value["channels"]
    except (OSError, ValueError, AttributeError):
        pass
    paths = [p for split in dataset.splits.values() for p in split.paths]
    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        colour = any(m is not None and m not in GRAY_MODES for m in pool.map(_mode_or_none, paths, chunksize=64))
    channels = 3 if colour else 1
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"fingerprint": dataset.fingerprint, "channels": channels}))
    except OSError:
        pass  # a cache: an unwritable GENTK_HOME means reading the headers again next time
    return channels
