"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A write that fails (disk full, read-only folder, a file where a folder should be) raises
:class:`WriteError`: one line naming the path, and still an OSError for callers that add context.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import GentkError


class WriteError(GentkError, OSError):
    """A file could not be written; the message names it."""

    def __init__(self, path, exc: OSError):
        OSError.__init__(self, exc.errno, exc.strerror or str(exc))
        self.message = f"could not write {path}: {exc.strerror or exc}"

    def __str__(self) -> str:
        return self.message


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        _atomic_write(path, data)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc


def probe_writable(folder: Path) -> None:
    """Raise WriteError now, rather than after minutes of work, if ``folder`` cannot take a file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gentk-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise WriteError(folder, exc) from exc


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
