"""Feature statistics (mu, sigma) and the Frechet distance, with pytorch-fid's formula."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance

from ..errors import DataError, UsageError
from ..fsutil import atomic_write_bytes
from ..safeio import read_bytes

MAX_NPZ_BYTES = 64 << 20  # 2048-d statistics take 33 MB


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int | None = None
    #: The features minus their mean, kept (never saved) when there are no more of them than
    #: dimensions: sigma's rank is below its size, and the trace of the square root has an
    #: exact low-rank form (:func:`trace_sqrt_low_rank`).
    centered: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])


def stats_from_features(features: np.ndarray) -> Stats:
    """Mean and covariance in float64, as pytorch-fid's calculate_activation_statistics."""
    if features.shape[0] < 2:
        raise UsageError(f"FID needs at least 2 images (got {features.shape[0]})")
    mu = np.mean(features, axis=0)
    low_rank = features.shape[0] <= features.shape[1]
    return Stats(mu, np.cov(features, rowvar=False), int(features.shape[0]),
                 (features - mu) if low_rank else None)


#: Smallest eigenvalue, relative to the largest, of a covariance taken as full rank: sample
#: covariances of fewer images than dimensions have eigenvalues of about 1e-16 of the largest.
FULL_RANK = 1e-12


def _full_rank(eigenvalues: np.ndarray) -> bool:
    return bool(eigenvalues.min() > FULL_RANK * max(float(eigenvalues.max()), 1e-300))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float | None:
    """tr(sqrtm(s1 @ s2)) for full-rank covariances, from two symmetric eigendecompositions; None
    when s1 or s2 is not symmetric positive definite (pytorch-fid's sqrtm decides then).

    With R = s1^(1/2), s1 @ s2 = R^-1 (R s2 R) R has the eigenvalues of the symmetric PSD R s2 R,
    so the trace of its square root is the sum of their square roots. At 2048 dims that is
    about 3 s here against scipy's sqrtm's 11 s, and agrees with it to 3e-11 relative on
    Inception features of 2100 images. With fewer images than dimensions the covariances are
    singular, sqrtm itself is inexact there, and the two part by up to 4e-7 (docs/fid.md), so
    singular sigmas keep pytorch-fid's computation and its number.
    """
    if not (np.allclose(s1, s1.T, rtol=0, atol=1e-12 * max(1.0, np.abs(s1).max()))
            and np.allclose(s2, s2.T, rtol=0, atol=1e-12 * max(1.0, np.abs(s2).max()))):
        return None
    w, v = np.linalg.eigh(s1)
    if not (_full_rank(w) and _full_rank(np.linalg.eigvalsh(s2))):
        return None
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ s2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)  # positive definite; rounding may leave ~-1e-16 of the largest
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def trace_sqrt_low_rank(a: Stats, b: Stats) -> float | None:
    """tr(sqrtm(s1 @ s2)) exactly when one side has fewer images than dimensions; None otherwise.

    With X the centered features of a (n x d), s1 = X^T X / (n-1), and the nonzero eigenvalues
    of s1 @ s2 are those of the n x n symmetric PSD X s2 X^T / (n-1); when b's features are kept
    too (Y, m x d) that matrix is M M^T with M = X Y^T / sqrt((n-1)(m-1)), and the trace is the
    sum of M's singular values. sqrtm of the singular 2048 x 2048 product takes 11-13 s here and
    is itself inexact (its result is not quite real); this is exact up to rounding and takes
    well under a second for a few hundred images.
    """
    if a.centered is None and b.centered is None:
        return None
    if a.centered is None:
        a, b = b, a
    x = a.centered
    if b.centered is not None:
        y = b.centered
        m = (x @ y.T) / math.sqrt((x.shape[0] - 1) * (y.shape[0] - 1))
        return float(np.linalg.svd(m, compute_uv=False).sum())
    k = (x @ b.sigma @ x.T) / (x.shape[0] - 1)
    # Centered rows sum to zero, so k has an eigenvalue 0 (the smallest: k is PSD); its rounding
    # noise, ~1e-16 of the largest, would add its square root, ~1e-8, to the trace: drop it.
    ev = np.linalg.eigvalsh((k + k.T) / 2)[1:]
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance(a: Stats, b: Stats, notes: list | None = None) -> float:
    """pytorch-fid's calculate_frechet_distance (the same formula, the trace of the matrix square
    root by :func:`trace_sqrt_product` where the sigmas are covariances); what pytorch-fid prints
    or warns goes into ``notes``."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise UsageError(f"statistics of different dimensions ({a.dims} vs {b.dims}) cannot be compared")
    few = any(c is not None and c <= a.dims for c in (a.count, b.count))  # singular: no need to look
    finite = all(np.isfinite(v).all() for v in (a.sigma, b.sigma, a.mu, b.mu))
    if finite and (not few or a.centered is not None or b.centered is not None):
        if few:
            tr = trace_sqrt_low_rank(a, b)
        else:
            tr = trace_sqrt_product(np.atleast_2d(a.sigma), np.atleast_2d(b.sigma))
        if tr is not None:
            diff = np.atleast_1d(a.mu) - np.atleast_1d(b.mu)
            value = float(diff.dot(diff) + np.trace(a.sigma) + np.trace(b.sigma) - 2 * tr)
            if math.isfinite(value):
                return value
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        try:
            value = float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
        except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. "Imaginary component": not a covariance
            raise DataError(f"these statistics have no Frechet distance ({exc}); is each sigma a covariance?") from None
    if not math.isfinite(value):
        raise DataError(f"the FID of these statistics is {value}: their values are out of any feature space's range")
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


#: The largest feature space gentk scores in (Inception's pool3): a bigger .npz is no FID statistics.
MAX_DIMS = 2048
#: A member of that size uncompressed: sigma is MAX_DIMS^2 float64 plus numpy's header.
MAX_MEMBER_BYTES = MAX_DIMS * MAX_DIMS * 8 + (1 << 16)
#: Feature statistics gentk can meet (Inception's pool3 and the classifier's features are O(1)-O(100)).
MAX_VALUE = 1e12


def check_npz_members(data: bytes, path, max_member: int, what: str) -> None:
    """Every member of an .npz, before anything is decompressed: its size in the zip directory,
    and for .npy members the shape and dtype their header declares (what np.load would allocate)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.file_size > max_member:
                raise DataError(f"{path}: {info.filename} would decompress to {info.file_size:,} bytes, more than "
                                f"{what} need")
            with archive.open(info) as member:
                try:
                    shape, dtype = npy_header(member)
                except ValueError:  # not a .npy member: np.load hands such members back as bytes
                    continue
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > max_member:
                raise DataError(f"{path}: {info.filename} declares a {shape} array, more than {what} need")


def load_stats(path: Path) -> Stats:
    """A pytorch-fid style .npz with ``mu`` and ``sigma``; never unpickles. Bounded: the file is
    read as a regular file of at most MAX_NPZ_BYTES, each member's size is checked in the zip
    directory before it is decompressed, and at most MAX_DIMS feature dimensions are accepted."""
    path = Path(path)
    try:
        source = path.resolve(strict=True) if path.is_symlink() else path  # a link the user named is followed once
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{path} is a link that leads nowhere usable ({exc})") from None
    data = read_bytes(source, MAX_NPZ_BYTES, DataError, ".npz of FID statistics")
    try:
        check_npz_members(data, path, MAX_MEMBER_BYTES, f"{MAX_DIMS}-d statistics")
        with warnings.catch_warnings(), np.load(io.BytesIO(data), allow_pickle=False) as npz:
            warnings.simplefilter("ignore")  # numpy's notes on odd dtypes: the checks below speak instead
            if "mu" not in npz.files or "sigma" not in npz.files:
                raise DataError(f"{path} has no 'mu' and 'sigma' arrays (pytorch-fid's statistics format)")
            raw_mu, raw_sigma = npz["mu"], npz["sigma"]
            count = npz["count"] if "count" in npz.files else None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, TypeError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError) as exc:
        raise DataError(f"{path} is not a readable .npz of FID statistics ({type(exc).__name__})") from exc
    for name, array in (("mu", raw_mu), ("sigma", raw_sigma)):
        if not isinstance(array, np.ndarray):
            raise DataError(f"{path}: {name} is not a .npy array")
        if array.dtype.kind not in "fiu":
            raise DataError(f"{path}: {name} is {array.dtype}; FID statistics are real numbers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu, sigma = raw_mu.astype(np.float64), raw_sigma.astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not a mean and its covariance")
    if not 2 <= mu.shape[0] <= MAX_DIMS:
        raise DataError(f"{path}: {mu.shape[0]}-d statistics; gentk scores 2 to {MAX_DIMS} dimensions")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{path}: statistics contain NaN or infinite values")
    if np.abs(mu).max() > MAX_VALUE or np.abs(sigma).max() > MAX_VALUE:
        raise DataError(f"{path}: statistics above {MAX_VALUE:g} in size; no feature extractor gentk knows makes those")
    if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8) or (np.diag(sigma) < 0).any():
        raise DataError(f"{path}: sigma is not a covariance matrix (it must be symmetric, with a non-negative diagonal)")
    ok_count = count is not None and count.shape == () and count.dtype.kind in "iu" and count >= 0
    return Stats(mu, sigma, int(count) if ok_count else None)


def npy_header(stream) -> tuple[tuple, np.dtype]:
    """Shape and dtype from a .npy header, read without reading (or allocating) the array."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = reader(stream)
    return tuple(shape), dtype
