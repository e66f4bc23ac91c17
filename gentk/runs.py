"""The run directory: config.json, metrics.jsonl, checkpoints/, samples/, plots/, a lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import stat
from pathlib import Path

from .config import checked_config
from .errors import RunDirError
from .fsutil import atomic_write_text
from .safeio import MiB, link_inside, read_lines, read_text
from .schema import FID_RESULT, METRICS_ROW, parse_json, validate

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"
FID = "fid.json"
MAX_CONFIG_BYTES = 1 * MiB
MAX_FID_BYTES = 1 * MiB
MAX_METRICS_BYTES = 1024 * MiB  # 5 million rows of 200 bytes
MAX_LINE_BYTES = 64 * 1024


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # -- layout ---------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.folder("checkpoints")

    @property
    def samples(self) -> Path:
        return self.folder("samples")

    @property
    def plots(self) -> Path:
        return self.folder("plots")

    def check_layout(self) -> None:
        """Refuse, before anything is written, a run whose folders or files are links or the wrong kind."""
        for name in ("checkpoints", "samples", "plots"):
            self.folder(name)
        for name in (CONFIG, METRICS, LOCK):
            path = self.inside(name)
            if path.exists() and not path.is_file():
                raise RunDirError(f"{path} is not a regular file; move it away")

    def folder(self, name: str) -> Path:
        """A sub-folder of the run (made later if missing): never a link, never another kind of file."""
        path = self.inside(name)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} should be a folder but is not; move it away")
        return path

    @property
    def metrics_path(self) -> Path:
        return self.inside(METRICS)

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file()

    def inside(self, name: str) -> Path:
        """``RUN/name``, refused when it is (or lies under) a symbolic link: gentk never reads or
        writes another folder's files through a link planted in a run."""
        path = self.path / name
        link = link_inside(self.path, path)
        if link is not None:
            raise RunDirError(f"{link} is a symbolic link; gentk does not follow links inside a run "
                              "directory (remove it, or copy the run)")
        return path

    # -- config ---------------------------------------------------------------
    def read_config(self) -> dict:
        path = self.inside(CONFIG)
        if not path.exists():
            if not self.path.exists():
                raise RunDirError(f"{self.path} does not exist (`gentk runs` lists the runs in runs/)")
            if self.path.is_dir() and any(os.path.isfile(p / CONFIG) for p in _some_children(self.path)):
                raise RunDirError(f"{self.path} is not a gentk run (no {CONFIG}) but holds runs: "
                                  f"`gentk runs {shlex.quote(str(self.path))}` lists them")
            if not self.path.is_dir():
                raise RunDirError(f"{self.path} is a file, not a gentk run (a run is a folder with a {CONFIG})")
            raise RunDirError(f"{self.path} is not a gentk run (no {CONFIG}); train one with `gentk train`")
        text = read_text(path, MAX_CONFIG_BYTES, RunDirError, "gentk run config")
        return checked_config(parse_json(text, path, RunDirError, "gentk run config"), path, RunDirError)

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.inside(CONFIG), json.dumps(config, indent=2, sort_keys=True) + "\n")

    # -- fid.json -------------------------------------------------------------
    def read_fid_scores(self) -> dict | None:
        """The scores in RUN/fid.json (None when there is none); damage is a RunDirError naming the field."""
        result = self.read_fid_result()
        return None if result is None else result.get("scores")

    def read_fid_result(self) -> dict | None:
        """RUN/fid.json, its scores checked (None when there is none); its other fields are as written."""
        path = self.inside(FID)
        if not (path.exists() or path.is_symlink()):  # a link is refused by the read, not taken for "none"
            return None
        result = parse_json(read_text(path, MAX_FID_BYTES, RunDirError, "FID result"), path, RunDirError, "FID result")
        validate(result, FID_RESULT, path, RunDirError)
        return result

    # -- metrics --------------------------------------------------------------
    def read_metrics(self) -> list[dict]:
        return self.read_metrics_checked()[0]

    def read_metrics_checked(self) -> tuple[list[dict], list[tuple[int, str, bytes]]]:
        """The valid rows, and the damaged lines as (line number, why, raw bytes): a damaged line
        costs only itself, never the rows after it."""
        path = self.inside(METRICS)
        if not path.exists():
            return [], []
        rows, damaged = [], []
        for number, raw in enumerate(read_lines(path, MAX_METRICS_BYTES, MAX_LINE_BYTES, RunDirError, "metrics log"), 1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                damaged.append((number, f"longer than {MAX_LINE_BYTES:,} bytes", raw[:MAX_LINE_BYTES]))
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                validate(row, METRICS_ROW, f"{path} line {number}", RunDirError)
            except (UnicodeDecodeError, ValueError, RecursionError, RunDirError) as exc:
                why = str(exc).rsplit(": ", 1)[-1] if isinstance(exc, RunDirError) else type(exc).__name__
                damaged.append((number, why, raw))
                continue
            rows.append(row)
        return rows, damaged

    def truncate_metrics(self, step: int) -> list[str]:
        """Keep only rows up to ``step`` (rows written after the checkpoint resumed from). Damaged
        lines go to metrics.jsonl.damaged; returns a note for each."""
        rows, damaged = self.read_metrics_checked()
        notes = []
        if damaged:
            aside = self.inside(METRICS + ".damaged")
            with open_append(aside) as fh:
                fh.write(b"".join(raw + b"\n" for _, _, raw in damaged))
            notes = [f"{self.metrics_path} line {n} was damaged ({why}); kept aside in {aside}"
                     for n, why, _ in damaged]
        kept = [r for r in rows if r["step"] <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        return notes

    # -- lock -----------------------------------------------------------------
    def lock(self) -> None:
        """Refuse a second process on the same run (the lock dies with its process)."""
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.inside(LOCK)
        flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:  # left by an earlier process: reuse it if it is a plain file
                fd = os.open(path, flags | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunDirError(f"{path} is a symbolic link; remove it (gentk never writes through a link)") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunDirError(f"{path} is not a regular file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(f"{self.path} is in use by another gentk process (PID {other})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def open_append(path: Path):
    """A file opened for appending, never through a symbolic link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path} is a symbolic link; gentk never writes through a link") from None
        raise
    return os.fdopen(fd, "ab")


def _some_children(folder: Path, limit: int = 1000):
    """Up to ``limit`` sub-folders (not links) of ``folder``: enough to tell a folder of runs, bounded
    for a huge one."""
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= limit:
                    return
                if entry.is_dir(follow_symlinks=False):
                    yield Path(entry.path)
    except OSError:
        return
