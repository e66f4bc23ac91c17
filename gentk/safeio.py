"""Reading files a user (or an attacker) may have handed over: regular files only, never
through a symbolic link, at most a stated number of bytes, each failure one GentkError line."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import GentkError

MiB = 1 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: Path, limit: int, error: type[GentkError] = GentkError, what: str = "file") -> bytes:
    """The bytes of ``path``: refused when it is a link, a FIFO, a device or a folder, or when
    more than ``limit`` bytes can be read (counted on the bytes read, not on st_size)."""
    path = Path(path)
    fd = _open_regular(path, error, what)
    try:
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 * MiB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise error(f"{path} is larger than {limit:,} bytes: too large to be a {what}")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_lines(path: Path, limit: int, line_limit: int, error: type[GentkError] = GentkError, what: str = "file"):
    """The lines of ``path`` (bytes, without their newline), streamed: the same refusals as
    :func:`read_bytes`; a line longer than ``line_limit`` comes back cut to ``line_limit + 1``
    bytes (the caller names it damaged) and the rest of it is skipped, never held in memory."""
    path = Path(path)
    fd = _open_regular(path, error, what)
    total = 0
    with os.fdopen(fd, "rb") as fh:
        while True:
            line = fh.readline(line_limit + 1)
            if not line:
                return
            total += len(line)
            if len(line) > line_limit and not line.endswith(b"\n"):
                while (rest := fh.readline(MiB)) and not rest.endswith(b"\n"):  # skip the remainder
                    total += len(rest)
                    if total > limit:
                        raise error(f"{path} is larger than {limit:,} bytes: too large to be a {what}")
                total += len(rest)
            if total > limit:
                raise error(f"{path} is larger than {limit:,} bytes: too large to be a {what}")
            yield line.rstrip(b"\n")


def _open_regular(path: Path, error, what: str) -> int:
    """A descriptor of ``path``: never through a link (O_NOFOLLOW), never waiting on a FIFO's
    writer (O_NONBLOCK), and only for a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link; gentk reads its {what} only from regular files") from None
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path} is {_kind(mode)}, not a {what}")
    return fd


def read_text(path: Path, limit: int, error: type[GentkError] = GentkError, what: str = "file") -> str:
    data = read_bytes(path, limit, error, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text (byte {exc.start}); not a {what}") from None


def link_inside(root: Path, path: Path) -> Path | None:
    """The first symbolic link on the way from ``root`` (exclusive) down to ``path``, or None."""
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            return current
    return None
