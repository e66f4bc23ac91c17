"""Shared fixtures: a tiny image-folder dataset, an isolated GENTK_HOME, a CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gentk.plugins import reset_registry
from gentk.testing import tiny_image_folder

torch.set_num_threads(2)


def make_image_folder(root: Path, n_train: int = 48, n_test: int = 16, size: int = 28, seed: int = 0) -> Path:
    """Small grayscale images of bright rectangles, split into train/ and test/."""
    tiny_image_folder(root, n_train, n_test, size, seed)
    return root


def fid_folder_pair(root: Path, n: int) -> tuple[Path, Path]:
    """Two folders of ``n`` small images; half of the second gets speckle noise: a clearly different set."""
    import numpy as np
    from PIL import Image

    a = make_image_folder(root / "a", n_train=n, n_test=0, seed=1) / "train"
    b = make_image_folder(root / "b", n_train=n, n_test=0, seed=2) / "train"
    rng = np.random.default_rng(3)
    for path in sorted(b.iterdir())[::2]:
        pixels = np.asarray(Image.open(path)).astype(np.int16) + rng.integers(0, 120, (28, 28))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return a, b


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """``--data`` value of a tiny dataset (48 train / 16 test images, 28x28)."""
    return "folder:" + str(make_image_folder(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own GENTK_HOME, no network downloads, and a fresh plugin registry."""
    monkeypatch.setenv("GENTK_HOME", str(tmp_path / "gentk-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("GENTK_OFFLINE", "1")
    # Building the compiled Inception takes 10-60 s per GENTK_HOME; tests_fid_compiled.py builds it.
    monkeypatch.setenv("GENTK_FID_COMPILE", "0")
    monkeypatch.delenv("GENTK_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("GENTK_DEBUG", raising=False)
    reset_registry()
    yield
    reset_registry()


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def gentk_cli(capsys):
    """Run the `gentk` CLI in-process: ``gentk_cli("train", "vae", ...)`` -> CliResult."""
    from gentk.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


TINY_TRAIN = ["--batch-size", "8", "--device", "cpu", "--no-progress", "--eval-limit", "16"]


def metric_rows(run_dir) -> list[dict]:
    """metrics.jsonl as dicts, without the wall-clock throughput (which differs run to run)."""
    import json

    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("images_per_sec", None)
    return rows


def python_gentk() -> list[str]:
    return [sys.executable, "-m", "gentk"]


def one_line_error(result: CliResult, code: int = 1) -> str:
    """Assert the CLI failed with ``code`` and exactly one `Error:` line, no traceback; return it."""
    assert result.code == code, result
    lines = [l for l in result.err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.err
    assert "Traceback" not in result.err
    return lines[0]


def last_line_error(result: CliResult, code: int = 1) -> str:
    """Like one_line_error for failures after training started (the data summary came first):
    one `Error:` line, the last, and no traceback."""
    assert result.code == code, result
    lines = [l for l in result.err.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    assert "Traceback" not in result.err
    return errors[0]
