"""Where a run's numbers go besides metrics.jsonl: TensorBoard, or a plugin's logger.

A logger is registered through the ``register_loggers`` hook as a
:class:`LoggerSpec` whose ``open(run_dir, config, resume_step)`` returns an
object with the :class:`Logger` methods. gentk calls them on rank 0 only, with
host numbers (never device tensors), after the rows reached metrics.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UsageError


class Logger:
    """What gentk calls on a logger. Every method may be left as it is (a no-op)."""

    def log_hparams(self, options: dict) -> None:
        """The run's settings, once per session (a flat dict of numbers, strings and booleans)."""

    def log_metrics(self, step: int, values: dict[str, float], split: str) -> None:
        """One metrics.jsonl row: ``split`` is "train" or "test" (held-out)."""

    def log_images(self, step: int, name: str, grid) -> None:
        """A sample grid: a float tensor C x H x W in [0, 1] on the CPU."""

    def close(self) -> None:
        """The session ends (finished, interrupted or failed): flush what is buffered."""


@dataclass(frozen=True)
class LoggerSpec:
    """``open(run_dir, config, resume_step)``: a :class:`Logger` for this session of the run;
    ``resume_step`` is the step a resumed session continues from (None for a new run), so that a
    logger can drop what an interrupted session wrote after it."""

    name: str
    open: Callable
    description: str = ""


class TensorBoardLogger(Logger):
    """Event files under RUN/tensorboard/ through torch.utils.tensorboard's SummaryWriter."""

    def __init__(self, run_dir: Path, config: dict, resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise UsageError("--logger tensorboard needs the tensorboard package: "
                             "pip install 'gentk[tensorboard]' (or pip install tensorboard)") from None
        # purge_step: events an interrupted session wrote past the checkpoint resumed from are
        # hidden, so a resumed run continues the same curves without duplicated steps.
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step is not None else None)

    def log_hparams(self, options: dict) -> None:
        import json

        text = "\n".join(f"    {k} = {json.dumps(v)}" for k, v in sorted(options.items()))
        self.writer.add_text("config", text, 0)
        scalar = {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))}
        self.writer.add_hparams(scalar, {}, run_name=".")

    def log_metrics(self, step: int, values: dict[str, float], split: str) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key if split == "train" else f"{split}/{key}", value, step)

    def log_images(self, step: int, name: str, grid) -> None:
        self.writer.add_image(name, grid, step)

    def close(self) -> None:
        self.writer.close()


BUILTIN_LOGGERS = [
    LoggerSpec("tensorboard", TensorBoardLogger,
               "TensorBoard event files in RUN/tensorboard (pip install 'gentk[tensorboard]')"),
]


class LoggerSet:
    """The run's loggers as one: each call goes to every logger; a logger's failure is one line
    naming it (the run stops, its last checkpoint intact)."""

    def __init__(self, loggers: list[tuple[str, Logger]]):
        self.loggers = loggers

    def _each(self, method: str, *args) -> None:
        from .errors import PluginError

        for name, logger in self.loggers:
            try:
                getattr(logger, method)(*args)
            except UsageError:
                raise
            except Exception as exc:  # noqa: BLE001 - a logger is a plugin: name it
                raise PluginError(f"logger {name!r} failed in {method}: {type(exc).__name__}: {exc}") from exc

    def log_hparams(self, options: dict) -> None:
        self._each("log_hparams", options)

    def log_metrics(self, step: int, values: dict, split: str) -> None:
        self._each("log_metrics", step, values, split)

    def log_images(self, step: int, name: str, grid) -> None:
        self._each("log_images", step, name, grid)

    def close(self) -> None:
        for _, logger in self.loggers:
            try:
                logger.close()
            except Exception:  # noqa: BLE001 - closing must not hide the error that ended the run
                pass
