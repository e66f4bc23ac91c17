"""The run directory: config.json, metrics.jsonl, checkpoints/, samples/, plots/, a lock."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from .errors import RunDirError
from .fsutil import atomic_write_text

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # -- layout ---------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file()

    # -- config ---------------------------------------------------------------
    def read_config(self) -> dict:
        path = self.path / CONFIG
        if not path.is_file():
            raise RunDirError(f"{self.path} is not a gentk run (no {CONFIG}); train one with `gentk train`")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{path} is not readable JSON: {exc}") from exc
        if not isinstance(config, dict) or "model" not in config:
            raise RunDirError(f"{path} is not a gentk run config")
        return config

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")

    # -- metrics --------------------------------------------------------------
    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        with open(self.metrics_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    break  # a line cut short by a crash ends the readable part
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Keep only rows up to ``step`` (rows written after the checkpoint resumed from)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    # -- lock -----------------------------------------------------------------
    def lock(self) -> None:
        """Refuse a second process on the same run (the lock dies with its process)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
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
