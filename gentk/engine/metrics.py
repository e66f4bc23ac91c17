"""Per-step metrics: kept on the device, read in one transfer per flush, appended to metrics.jsonl."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ..errors import GentkError, RunDirError
from ..runs import open_append


class NonFiniteLoss(GentkError):
    """A loss became NaN or infinite."""


class MetricsLog:
    """Buffers each step's metrics (device tensors stay on the device until :meth:`flush`).

    ``images_per_sec`` is added to the newest training row of every flush: the host
    clock since the previous flush; work still queued on a GPU counts in the next window,
    so over a run the windows add up.
    """

    def __init__(self, path: Path, dist, images_per_step: int, on_rows=None):
        self.path = path
        self.on_rows = on_rows  # called with the rows just written (rank 0): the run's loggers
        self.dist = dist
        self.images_per_step = images_per_step
        self.last: dict = {}  # the newest row written
        self.phase_of: dict[str, str] = {}  # logged key -> its phase, to name a NaN's phase
        self._pending: list[tuple[int, int, dict]] = []
        self._window: tuple[int, float] | None = None

    def start(self, step: int) -> None:
        self._window = (step, time.perf_counter())

    def record(self, step: int, epoch: int, values: dict) -> None:
        self._pending.append((step, epoch, values))

    def discard(self) -> None:
        self._pending = []

    def flush(self, last_checkpoint: int) -> None:
        """Write the buffered rows; a non-finite loss stops the run after the rows before it."""
        if not self._pending:
            return
        self._mark_throughput()
        tensors = [v for _, _, vals in self._pending for v in vals.values() if torch.is_tensor(v)]
        if tensors:
            stacked = torch.stack([t.detach().float().reshape(()) for t in tensors])
            # Under torchrun: the mean over ranks (every rank logs the same steps and keys).
            host = iter(self.dist.mean(stacked).tolist())
        else:
            host = iter(())
        pending, self._pending = self._pending, []
        lines, records = [], []
        for step, epoch, vals in pending:
            record = {"step": step, "epoch": epoch}
            record.update({k: (next(host) if torch.is_tensor(v) else v) for k, v in vals.items()})
            for key, value in record.items():
                if isinstance(value, float) and not math.isfinite(value) and key.endswith("loss"):
                    self._write(lines, records)
                    kept = (f"The last checkpoint (step {last_checkpoint}) is intact" if last_checkpoint
                            else "No checkpoint was written yet")
                    raise NonFiniteLoss(f"step {step}, phase {self.phase_of.get(key, '?')!r}: {key} is {value}; "
                                        f"stopped. {kept}; lower --lr, or pass --on-nan skip to skip such steps")
            lines.append(json.dumps(record))
            records.append(record)
            self.last = record
        self._write(lines, records)

    def _write(self, lines: list[str], records: list[dict]) -> None:
        if not lines or not self.dist.is_main:
            return
        try:
            with open_append(self.path) as fh:
                fh.write(("\n".join(lines) + "\n").encode("utf-8"))
        except OSError as exc:
            raise RunDirError(f"could not append to {self.path}: {exc.strerror or exc}") from exc
        if self.on_rows is not None:
            self.on_rows(records)

    def _mark_throughput(self) -> None:
        training = [(step, vals) for step, _, vals in self._pending if "split" not in vals]
        if not training or self._window is None or training[-1][0] <= self._window[0]:
            return
        (step, vals), (since, then) = training[-1], self._window
        now = time.perf_counter()
        vals["images_per_sec"] = round((step - since) * self.images_per_step / max(now - then, 1e-9), 1)
        self._window = (step, now)
