"""A folder of images (PNG, JPEG, ...) as a dataset, grayscale or RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
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


def read_images(paths: list[Path]) -> np.ndarray:
    """uint8 N x C x H x W; C is 1 if every image is grayscale, else 3."""
    if not paths:
        raise DataError("no images to read")
    loaded = []
    for path in paths:
        try:
            with Image.open(path) as img:
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
    arrays = [np.asarray(img.convert(mode), dtype=np.uint8) for img in loaded]
    stacked = np.stack(arrays)
    return stacked[:, None] if gray else stacked.transpose(0, 3, 1, 2).copy()


def read_image_folder(folder: Path):
    from .sources import Dataset

    train_dir, test_dir = folder / "train", folder / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train_paths, skipped_train = list_images(train_dir)
        test_paths, skipped_test = list_images(test_dir)
        skipped = skipped_train + skipped_test
        how = "train/ and test/"
    else:
        train_paths, skipped = list_images(folder)
        test_paths = train_paths
        how = "one split (no train/ and test/ subfolders: the test split is the same images)"
    if not train_paths or not test_paths:
        raise DataError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    train = read_images(train_paths)
    test = read_images(test_paths) if test_paths is not train_paths else train
    note = f", {skipped} non-image file(s) skipped" if skipped else ""
    return Dataset(f"folder:{folder}", train, test,
                   f"folder {folder}: {len(train)} train / {len(test)} test images, {how}{note}")
