"""A folder of images (PNG, JPEG, ...) as a dataset, grayscale or RGB."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# Decompression bombs are refused by PIL above this many pixels; we go lower.
MAX_PIXELS = 4096 * 4096


def list_images(folder: Path) -> tuple[list[Path], int]:
    """Image files under ``folder`` (sorted, recursive) and how many other files were skipped."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    images, skipped = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            skipped += 1
    return images, skipped


def to_8bit(img, path: Path, mode: str) -> np.ndarray:
    """uint8 pixels in ``mode`` ("L" or "RGB"). 16-bit images (and 32-bit integer ones, as Pillow
    may open 16-bit files) are scaled by 1/257, 65535 -> 255, not clipped; float images are refused."""
    if img.mode == "F":
        raise DataError(f"{path} has floating-point pixels; save it as an 8- or 16-bit image")
    if img.mode.startswith("I"):
        wide = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or wide.max(initial=0) > 255:
            wide = wide / 257.0
        gray = np.clip(np.rint(wide), 0, 255).astype(np.uint8)
        return gray if mode == "L" else np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(img.convert(mode), dtype=np.uint8)


def read_images(paths: list[Path]) -> np.ndarray:
    """uint8 N x C x H x W; C is 1 if every image is grayscale, else 3."""
    if not paths:
        raise DataError("no images to read")
    loaded = []
    for path in paths:
        try:
            with warnings.catch_warnings(), Image.open(path) as img:
                # Pillow warns of large images before we refuse them ourselves, below its limit.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{path}: {img.width}x{img.height} is too large an image")
                img.load()
                loaded.append(img.copy())
        # Pillow reports some damaged PNG chunks as SyntaxError ("broken PNG file").
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path} is not a readable image ({type(exc).__name__})") from exc
    gray = all(img.mode in GRAY_MODES for img in loaded)
    mode = "L" if gray else "RGB"
    sizes = {img.size for img in loaded}
    if len(sizes) > 1:
        (w0, h0), (w1, h1) = sorted(sizes)[:2]
        raise DataError(f"images have mixed sizes ({w0}x{h0}, {w1}x{h1}, ...); "
                        "resize them to one size first")
    arrays = [to_8bit(img, path, mode) for img, path in zip(loaded, paths)]
    stacked = np.stack(arrays)
    return stacked[:, None] if gray else stacked.transpose(0, 3, 1, 2).copy()


def class_folders(folder: Path) -> list[Path] | None:
    """torchvision's ImageFolder layout: no images directly in ``folder``, one subfolder per class."""
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders or any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return None
    return subfolders


def list_split(folder: Path, classes: list[str] | None = None):
    """(image paths, labels or None, class names or None, skipped files) of one split.

    With class subfolders, ``classes`` (the training split's names) fixes the label of each name."""
    subfolders = class_folders(folder) if folder.is_dir() else None
    if subfolders is None:
        paths, skipped = list_images(folder)
        return paths, None, None, skipped
    names = [p.name for p in subfolders]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(f"{folder} has class folder(s) {', '.join(unknown)} that the training split lacks")
        names = classes
    paths, labels, skipped = [], [], 0
    for index, name in enumerate(names):
        if not (folder / name).is_dir():
            continue
        found, skip = list_images(folder / name)
        paths += found
        labels += [index] * len(found)
        skipped += skip
    return paths, np.asarray(labels, dtype=np.int64), names, skipped


def read_image_folder(folder: Path):
    from .dataset import Dataset

    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    train_dir, test_dir = folder / "train", folder / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train_paths, train_labels, classes, skipped_train = list_split(train_dir)
        test_paths, test_labels, test_classes, skipped_test = list_split(test_dir, classes)
        if (classes is None) != (test_classes is None):
            raise DataError(f"{folder}: train/ and test/ must both have class subfolders, or neither")
        skipped = skipped_train + skipped_test
        how = "train/ and test/"
    else:
        train_paths, train_labels, classes, skipped = list_split(folder)
        test_paths, test_labels = train_paths, train_labels
        how = "one split (no train/ and test/ subfolders: the test split is the same images)"
    if not train_paths or not test_paths:
        raise DataError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    train = read_images(train_paths)
    test = read_images(test_paths) if test_paths is not train_paths else train
    if train.shape[1] != test.shape[1]:  # one split all grayscale, the other with colour
        channels = max(train.shape[1], test.shape[1])
        train, test = (np.repeat(x, channels, axis=1) if x.shape[1] != channels else x for x in (train, test))
    note = f", {skipped} non-image file(s) skipped" if skipped else ""
    labelled = f", {len(classes)} classes from subfolders" if classes else ""
    return Dataset(f"folder:{folder}", train, test,
                   f"folder {folder}: {len(train)} train / {len(test)} test images, {how}{labelled}{note}",
                   train_labels, test_labels, classes)
