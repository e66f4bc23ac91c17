"""Verified array cache under $GENTK_HOME: npz (no pickle) plus a JSON of sha256 per array."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write_bytes


def gentk_home() -> Path:
    return Path(os.environ.get("GENTK_HOME", Path.home() / ".cache" / "gentk"))


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io

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
        hashes = json.loads(sidecar.read_text())
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception:  # noqa: BLE001 - any damage means "fetch again"
        return None
    wanted = expected or hashes
    if not isinstance(wanted, dict) or set(wanted) - set(arrays):
        return None
    if any(array_sha256(arrays[k]) != v for k, v in wanted.items()):
        return None
    return arrays
