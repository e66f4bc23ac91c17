"""Helpers for testing gentk plugins in-process: a tiny dataset, registration, a few training steps.

    from gentk.testing import registered, tiny_image_folder, train_steps

    def test_my_model(tmp_path):
        with registered(my_plugin_module, "my-plugin"):
            summary = train_steps("my-model", tmp_path, steps=5)
        assert summary["steps"] == 5
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .plugins import register_plugin, unregister_plugin


def tiny_image_folder(root: str | Path, n_train: int = 48, n_test: int = 16, size: int = 28, seed: int = 0,
                      classes: int = 0) -> str:
    """Small grayscale images of bright rectangles in ``root/train`` and ``root/test``; returns the
    ``--data`` value (``folder:ROOT``). With ``classes=K`` the images go into K class subfolders
    (``class0`` ...), and class k's rectangles sit in its own band of rows, so labels mean something."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            folder = root / split / (f"class{i % classes}" if classes else "")
            folder.mkdir(parents=True, exist_ok=True)
            img = np.zeros((size, size), dtype=np.uint8)
            x0, y0 = rng.integers(2, size // 2, size=2)
            if classes:
                y0 = 1 + (i % classes) * (size - 6) // classes
            x1, y1 = x0 + rng.integers(4, size // 2), y0 + rng.integers(4, size // 2)
            img[y0:y1, x0:x1] = rng.integers(128, 256)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    return f"folder:{root}"


def rgb_image_folder(root: str | Path, per_class: int = 8, classes: int = 3, seed: int = 0,
                     gray_every: int = 5) -> str:
    """Photos as users have them, small: class subfolders (``cat``, ``dog``, ... ) of PNG and JPEG
    images of mixed sizes and aspect ratios (16-48 pixels a side), mostly RGB, every
    ``gray_every``-th one grayscale; each class has its own dominant colour. Returns ``folder:ROOT``."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "eel", "fox", "gnu", "hen", "jay", "koi", "owl", "yak"]
    for k in range(classes):
        folder = root / (names[k] if k < len(names) else f"class{k}")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(16, 49, size=2))
            pixels = rng.integers(0, 120, size=(h, w, 3)).astype(np.uint8)
            pixels[..., k % 3] += np.uint8(120)
            img = Image.fromarray(pixels)
            if gray_every and i % gray_every == gray_every - 1:
                img = img.convert("L")
            img.save(folder / f"{i:04d}.{'jpg' if i % 2 else 'png'}")
    return f"folder:{root}"


@contextmanager
def registered(plugin, name: str):
    """Register ``plugin`` (a module or an object with @gentk.hookimpl methods) for the block.
    A plugin that is already loaded (installed through its entry point) is used as it is."""
    from .plugins import get_registry

    if get_registry().pm.is_registered(plugin):
        yield plugin
        return
    register_plugin(plugin, name)
    try:
        yield plugin
    finally:
        unregister_plugin(name)


def train_steps(model: str, tmp_path: str | Path, steps: int = 5, **settings) -> dict:
    """Train ``model`` for ``steps`` steps on a tiny dataset on the CPU; returns the summary
    (``summary["run_dir"]`` holds the run). ``settings`` as for :func:`gentk.train`."""
    from .engine import train

    tmp_path = Path(tmp_path)
    if "data" not in settings:  # (setdefault would write the tiny folder even when data is given)
        settings["data"] = tiny_image_folder(tmp_path / "data")
    settings.setdefault("batch_size", 8)
    settings.setdefault("device", "cpu")
    settings.setdefault("epochs", 1000)
    settings.setdefault("eval_limit", 8)
    return train(model, settings.pop("run_dir", tmp_path / "run"), max_steps=steps, progress=False, **settings)
