"""Verified array cache under $GENTK_HOME: npz (no pickle) plus a JSON of sha256 per array."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write_bytes


#: The largest cached dataset entry (MNIST and Fashion-MNIST are 55 MB uncompressed).
MAX_CACHE_BYTES = 256 << 20


def gentk_home() -> Path:
    """$GENTK_HOME, or ~/.cache/gentk when it is unset or empty (never the current folder)."""
    return Path(os.environ.get("GENTK_HOME") or Path.home() / ".cache" / "gentk")


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    hashes = {k: array_sha256(v) for k, v in arrays.items()}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(hashes, indent=1).encode())


def load_arrays(path: Path, expected: dict[str, str] | None = None) -> dict[str, np.ndarray] | None:
    """The cached arrays if present and intact (their hashes match), else None."""
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        from ..fid.stats import check_npz_members
        from ..safeio import MiB, read_bytes, read_text

        hashes = json.loads(read_text(sidecar, 1 * MiB))
        data = read_bytes(path, MAX_CACHE_BYTES)
        # A cache entry inflating past what a dataset of images holds is damage: fetch again.
        check_npz_members(data, path, MAX_CACHE_BYTES, "a cached dataset")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception:  # noqa: BLE001 - any damage means "fetch again"
        return None
    wanted = expected or hashes
    if not isinstance(wanted, dict) or set(wanted) - set(arrays):
        return None
    if any(array_sha256(arrays[k]) != v for k, v in wanted.items()):
        return None
    return arrays
