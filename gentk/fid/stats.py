"""Feature statistics (mu, sigma) and the Frechet distance, with pytorch-fid's own numerics."""

from __future__ import annotations

import contextlib
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance

from ..errors import DataError, UsageError
from ..fsutil import atomic_write_bytes

MAX_NPZ_BYTES = 1 << 30


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int | None = None

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])


def stats_from_features(features: np.ndarray) -> Stats:
    """Mean and covariance in float64, as pytorch-fid's calculate_activation_statistics."""
    if features.shape[0] < 2:
        raise UsageError(f"FID needs at least 2 images (got {features.shape[0]})")
    return Stats(np.mean(features, axis=0), np.cov(features, rowvar=False), int(features.shape[0]))


def frechet_distance(a: Stats, b: Stats, notes: list | None = None) -> float:
    """pytorch-fid's calculate_frechet_distance; what it prints or warns goes into ``notes``."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise UsageError(f"statistics of different dimensions ({a.dims} vs {b.dims}) cannot be compared")
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        value = float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
    if notes is not None:
        notes.extend(line.strip() for line in printed.getvalue().splitlines() if line.strip())
        notes.extend(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning))
    return value


def singular_warning(count: int | None, dims: int) -> str | None:
    if count is not None and count < dims:
        return (f"{count} images for {dims}-d features: the covariance is singular, so the FID is "
                "biased and unstable; use at least as many images as feature dims")
    return None


def save_stats(path: Path, stats: Stats, extra: dict | None = None) -> None:
    buf = io.BytesIO()
    arrays = {"mu": stats.mu, "sigma": stats.sigma}
    if stats.count is not None:
        arrays["count"] = np.array(stats.count)
    for key, value in (extra or {}).items():
        arrays[key] = np.array(value)
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_stats(path: Path) -> Stats:
    """A pytorch-fid style .npz with ``mu`` and ``sigma``; never unpickles."""
    try:
        if path.stat().st_size > MAX_NPZ_BYTES:
            raise DataError(f"{path} is too large to be FID statistics")
        with np.load(path, allow_pickle=False) as npz:
            if "mu" not in npz.files or "sigma" not in npz.files:
                raise DataError(f"{path} has no 'mu' and 'sigma' arrays (pytorch-fid's statistics format)")
            mu, sigma = np.asarray(npz["mu"], dtype=np.float64), np.asarray(npz["sigma"], dtype=np.float64)
            count = int(npz["count"]) if "count" in npz.files and npz["count"].shape == () else None
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist") from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, TypeError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError) as exc:
        raise DataError(f"{path} is not a readable .npz of FID statistics ({type(exc).__name__})") from exc
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not a mean and its covariance")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{path}: statistics contain NaN or infinite values")
    return Stats(mu, sigma, count)
