"""Reading image files: one image (8- or 16-bit, grayscale or RGB), or a folder of same-sized ones.

A folder as a *training* dataset (class subfolders, splits, any sizes, the
decoded cache) is :mod:`gentk.data.image_folder`'s.
"""

from __future__ import annotations

import os
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


def decode_workers() -> int:
    """Threads that decode images (Pillow releases the GIL while decoding)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cpus))


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


#: What Pillow raises for a file that is not a readable image (some damaged PNG chunks are a
#: SyntaxError, "broken PNG file").
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def open_image(path: Path):
    """A loaded Pillow image, or DataError naming the file (too large, damaged, not an image)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            # Pillow warns of large images before we refuse them ourselves, below its limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"{path}: {img.width}x{img.height} is too large an image")
            img.load()
            return img.copy()
    except UNREADABLE as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__})") from exc


def image_header(path: Path) -> tuple[str, tuple[int, int]]:
    """An image file's Pillow mode and (width, height) from its header alone (no decoding);
    DataError if unreadable."""
    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return img.mode, img.size
    except UNREADABLE as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__})") from exc


def image_mode(path: Path) -> str:
    """An image file's Pillow mode from its header alone (no decoding); DataError if unreadable."""
    return image_header(path)[0]


def decode_image(path: Path) -> np.ndarray:
    """uint8 C x H x W in the image's own colours: C is 1 for grayscale files, 3 otherwise."""
    img = open_image(path)
    gray = img.mode in GRAY_MODES
    pixels = to_8bit(img, path, "L" if gray else "RGB")
    return pixels[None] if gray else pixels.transpose(2, 0, 1)


def check_one_size(paths: list[Path], where: str) -> None:
    """DataError naming ``where`` and two files unless every image has one size (headers only: fast)."""
    _refuse_mixed_sizes(((path, image_header(path)[1]) for path in paths), where)


def _refuse_mixed_sizes(sized, where: str) -> None:
    """DataError naming ``where`` and the first two files of different sizes in (path, size) pairs."""
    first = None
    for path, size in sized:
        if first is None:
            first = (path, size)
        elif size != first[1]:
            (w0, h0), (w1, h1) = first[1], size
            raise DataError(f"{where}: images have mixed sizes ({first[0].name} is {w0}x{h0}, {path.name} is "
                            f"{w1}x{h1}); resize them to one size first (training fits any sizes; scoring "
                            "compares them as they are)")


def read_images(paths: list[Path]) -> np.ndarray:
    """uint8 N x C x H x W of same-sized images (samples to score); C is 1 if every image is
    grayscale, else 3."""
    if not paths:
        raise DataError("no images to read")
    loaded = [open_image(path) for path in paths]
    gray = all(img.mode in GRAY_MODES for img in loaded)
    mode = "L" if gray else "RGB"
    _refuse_mixed_sizes(((path, img.size) for path, img in zip(paths, loaded)), str(paths[0].parent))
    arrays = [to_8bit(img, path, mode) for img, path in zip(loaded, paths)]
    stacked = np.stack(arrays)
    return stacked[:, None] if gray else stacked.transpose(0, 3, 1, 2).copy()
