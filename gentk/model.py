"""The types a model plugin builds on: its spec, its phases, and the model base class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

#: Pixel ranges a model can ask for: "unit" is [0, 1], "symmetric" is [-1, 1].
VALUE_RANGES = ("unit", "symmetric")


@dataclass(frozen=True)
class TrainDefaults:
    """Defaults of the generic training options, chosen by each model."""

    epochs: int
    batch_size: int
    lr: float
    data_fraction: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    """What a plugin registers for one model name.

    ``options`` is a dataclass whose fields become ``gentk train NAME --flag``
    options (see :func:`gentk.options.option`); ``presets`` maps a preset name
    to a dict of option (and training default) overrides.
    """

    name: str
    options: type
    defaults: TrainDefaults
    description: str = ""
    presets: dict = field(default_factory=dict)


@dataclass
class Phase:
    """One optimizer step kind of a training step, run ``repeat`` times in a row.

    ``networks`` names the attributes of the model whose parameters this phase
    updates; ``optimizer`` builds the optimizer from those parameters.
    A phase with ``uses_data`` gets a fresh real batch each repetition.
    """

    name: str
    networks: list[str]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    repeat: int = 1
    uses_data: bool = True


class GenerativeModel(nn.Module):
    """Base class of every gentk model: networks as attributes, plus how to train and sample.

    Subclasses set ``image_size``, ``channels``, ``value_range`` and ``fit``
    ("resize" or "pad": how data of another size is brought to ``image_size``),
    and implement :meth:`phases`, :meth:`noise` and :meth:`sample`.
    """

    image_size: int = 28
    channels: int = 1
    value_range: str = "unit"
    fit: str = "resize"

    def __init__(self, options):
        super().__init__()
        self.options = options

    def networks(self) -> dict[str, nn.Module]:
        """The named networks, for parameter counts and phase optimizers."""
        return dict(self.named_children())

    def phases(self, lr: float) -> list[Phase]:
        raise NotImplementedError

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Latent noise for ``n`` samples, drawn on the CPU from ``generator``."""
        raise NotImplementedError

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Images in ``value_range`` from latent ``noise`` (already on the model's device)."""
        raise NotImplementedError

    def grids(self, noise: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images to save as grids during training: name -> images in ``value_range``."""
        return {"samples": self.sample(noise)}

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Map images from ``value_range`` to [0, 1]."""
        if self.value_range == "symmetric":
            images = (images + 1) / 2
        return images.clamp(0, 1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
