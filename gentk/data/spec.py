"""What a plugin registers for one dataset name (``--data NAME`` or ``--data NAME:ARG``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .dataset import Dataset

#: Whether ``--data NAME:ARG`` takes an argument.
ARG_KINDS = ("none", "optional", "required")


@dataclass(frozen=True)
class DatasetSpec:
    """``load(arg, data_root)`` returns a :class:`gentk.data.Dataset`; ``arg`` is the text after
    ``NAME:`` (None without one), ``data_root`` the ``--data-root`` Path (or None)."""

    name: str
    load: Callable[[str | None, Path | None], Dataset]
    description: str = ""
    arg: str = "none"
    arg_help: str = ""

    @property
    def usage(self) -> str:
        """How --data names it: ``mnist``, ``folder:PATH``."""
        return self.name if self.arg == "none" else f"{self.name}:{self.arg_help or 'ARG'}"

    def __post_init__(self):
        if self.arg not in ARG_KINDS:
            raise ValueError(f"DatasetSpec.arg must be one of {ARG_KINDS} (got {self.arg!r})")
