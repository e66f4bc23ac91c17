"""The rich progress bar of a training run (stderr), or nothing when disabled."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class TrainProgress:
    def __init__(self, total: int, completed: int, enabled: bool, console: Console, keys=None):
        self.enabled = enabled
        self.keys = list(keys) if keys else None  # the model's declared metrics; None: each phase's loss
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"), console=console, disable=not enabled,
            transient=False)
        self._task = self._progress.add_task("train", total=total, completed=completed, epoch=0, losses="")

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def advance(self, steps: int, epoch: int) -> None:
        self._progress.update(self._task, advance=steps, epoch=epoch)

    def show(self, record: dict) -> None:
        keys = self.keys or [k for k in record if k == "loss" or k.endswith("_loss")]
        text = "  ".join(f"{k} {record[k]:.4g}" for k in keys[:6]
                          if isinstance(record.get(k), (int, float)))
        self._progress.update(self._task, losses=text)


@contextmanager
def simple_progress(total: int, label: str, enabled: bool = True, console: Console | None = None):
    """A bar with a count and items/s; yields ``advance(n)``."""
    progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console or Console(stderr=True, soft_wrap=True), disable=not enabled)
    task = progress.add_task(label, total=total, rate="")

    def advance(n: int) -> None:
        progress.update(task, advance=n)
        speed = progress.tasks[0].speed
        if speed:
            progress.update(task, rate=f"{speed:.1f} img/s")

    with progress:
        yield advance
