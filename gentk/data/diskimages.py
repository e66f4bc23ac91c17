"""uint8 N x C x H x W images in a raw file on disk: written once in order, then read by rows.

Rows are read with ``pread`` into buffers gentk owns rather than through a
memory map: the file's pages then stay in the kernel's page cache, shared and
reclaimable, instead of counting against the process (a memory map touched
all over grows the resident set to the file's size). The bytes are the file's
either way, so batches are the same as from memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np

from ..errors import DataError

#: Integrity is checked per chunk of this many bytes (a damaged chunk means "decode again").
CHUNK_BYTES = 4 << 20


class DiskImages:
    """Read-only rows of a raw uint8 image file whose shape is known (from the cache's manifest)."""

    def __init__(self, path: Path, shape: tuple[int, int, int, int]):
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.nbytes = self.row_bytes * self.shape[0]
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != self.nbytes:
            self.close()
            raise DataError(f"{self.path} holds {info.st_size:,} bytes, not the {self.nbytes:,} of {self.shape}")

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows) -> np.ndarray:
        """The images at ``rows`` (any order, repeats allowed), as one array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        self.read_into(rows, out)
        return out

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} images")
        flat = out.reshape(len(rows), self.row_bytes)
        for j, row in enumerate(rows.tolist()):
            self._pread(flat[j], row * self.row_bytes)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.shape[0])
        out = np.empty((max(0, stop - start), *self.shape[1:]), dtype=np.uint8)
        if len(out):
            self._pread(out.reshape(-1), start * self.row_bytes)
        return out

    def load(self) -> np.ndarray:
        """Every image, in memory."""
        return self.read_range(0, self.shape[0])

    def _pread(self, buffer: np.ndarray, offset: int) -> None:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n <= 0:
                raise DataError(f"{self.path} ended early (truncated since it was checked?)")
            done += n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self):  # not picklable: a descriptor; rebuild from (path, shape)
        raise TypeError("DiskImages holds an open file; pass (path, shape) instead")


def chunk_hashes(path: Path) -> list[str]:
    """sha256 of each CHUNK_BYTES of a file, in order."""
    out = []
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            out.append(hashlib.sha256(chunk).hexdigest())
    return out


def verify_chunks(path: Path, expected: list[str], which: list[int] | None = None) -> bool:
    """Whether the chunks ``which`` (default: all) of ``path`` have the recorded hashes."""
    which = range(len(expected)) if which is None else which
    buffer = bytearray(CHUNK_BYTES)  # one buffer for every chunk: no 4 MiB allocation per read
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        for i in which:
            n = os.preadv(fd, [buffer], i * CHUNK_BYTES)
            if hashlib.sha256(view[:n]).hexdigest() != expected[i]:
                return False
    finally:
        os.close(fd)
    return True
