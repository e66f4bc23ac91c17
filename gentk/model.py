"""The types a model plugin builds on: its spec, its phases, its batches, and the model base class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

#: Pixel ranges a model can ask for: "unit" is [0, 1], "symmetric" is [-1, 1].
VALUE_RANGES = ("unit", "symmetric")
#: How an image of another size or shape becomes a model's ``image_size`` square (``--fit``):
#: crop: the centred square, then resized; pad: centred on black to a square, then padded up to
#: the size (MNIST 28 -> 32) or resized down to it; resize: stretched, aspect ratio not kept.
FITS = ("crop", "pad", "resize")


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

    ``model`` is the :class:`GenerativeModel` subclass gentk builds as
    ``model(options)`` (a ``build_model`` hook may build it instead).
    ``options`` is a dataclass whose fields become ``gentk train NAME --flag``
    options (see :func:`gentk.options.option`); ``presets`` maps a preset name
    to a dict of option (and training default) overrides.
    """

    name: str
    options: type
    defaults: TrainDefaults
    description: str = ""
    presets: dict = field(default_factory=dict)
    model: type | None = None


@dataclass
class Batch:
    """One batch of real data as a model's hooks see it.

    ``images`` are floats in the model's value range on the model's device;
    ``labels`` are int64 class indices on the same device (None for unlabelled
    data); ``num_classes`` is the dataset's class count (None without labels).
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class Phase:
    """One optimizer step kind of a training step, run ``repeat`` times in a row.

    ``networks`` names the attributes of the model whose parameters this phase
    updates; ``optimizer`` builds the optimizer from those parameters.
    A phase with ``uses_data`` gets a fresh real batch each repetition.
    While it runs, the parameters of the model's other networks do not get
    gradients (``requires_grad`` off, as Lightning's ``toggle_optimizer``):
    a generator step still back-propagates through the discriminator to the
    generator, but skips the discriminator's weight gradients it would throw
    away. ``freeze_others=False`` keeps them, for a loss that reads them.
    """

    name: str
    networks: list[str]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    repeat: int = 1
    uses_data: bool = True
    freeze_others: bool = True


class GenerativeModel(nn.Module):
    """Base class of every gentk model: networks as attributes, plus how to train and sample.

    Subclasses set ``image_size``, ``channels``, ``value_range`` and ``fit``
    (crop, pad or resize: how data of another size or shape is brought to
    ``image_size``; ``--fit`` overrides it). A model whose options have
    ``image_size`` or ``channels`` fields gets them as these attributes, and
    gentk sets an options ``channels`` of None to the data's channel count
    before building the model. Subclasses implement :meth:`phases`, :meth:`noise`, :meth:`sample` and
    :meth:`compute_loss`. A class-conditional model sets ``conditional = True``
    and ``num_classes``, and its :meth:`sample` takes ``labels``.
    """

    image_size: int = 28
    channels: int = 1
    value_range: str = "unit"
    fit: str = "crop"
    #: The name the model was registered under (set by gentk when it builds the model).
    model_name: str | None = None
    #: True for models whose ``sample(noise, labels)`` draws from given classes.
    conditional: bool = False
    #: Classes a conditional model knows (labels 0 .. num_classes - 1).
    num_classes: int | None = None
    #: Metric keys (as logged) shown in the progress bar; None: each phase's ``loss``.
    progress_metrics: tuple[str, ...] | None = None
    #: Extra figures in plots/: file stem -> panels, each a tuple of metric keys drawn on one axis.
    figures: dict[str, tuple[tuple[str, ...], ...]] = {}

    def __init__(self, options):
        super().__init__()
        self.options = options
        # Data-shaped options (``--image-size``, ``--channels``) decide the networks a subclass builds next.
        if getattr(options, "image_size", None) is not None:
            self.image_size = options.image_size
        if getattr(options, "channels", None) is not None:
            self.channels = options.channels

    def networks(self) -> dict[str, nn.Module]:
        """The named networks, for parameter counts and phase optimizers."""
        return dict(self.named_children())

    def phases(self, lr: float) -> list[Phase]:
        raise NotImplementedError

    # -- behaviour: called through the hooks of gentk's core plugin ----------------
    def compute_loss(self, phase: str, batch: Batch | None, state) -> dict:
        """A dict of 0-d tensors (or numbers) with ``loss`` for one optimizer step of ``phase``.
        ``batch`` is None for phases with ``uses_data=False``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute_loss")

    def adjust_beta(self, state, kl: torch.Tensor) -> float | None:
        """The KL weight for this step given the batch KL; default: keep ``state.beta``."""
        return None

    def on_step(self, phase: str, state, metrics: dict) -> None:
        """After every optimizer step of every phase (weight clipping, EMA, extra metrics in place)."""

    def evaluate(self, state, batches: Iterable[Batch]) -> dict | None:
        """Held-out metrics at the end of an epoch, from batches of the test split."""
        return None

    # -- sampling ----------------------------------------------------------------------
    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Latent noise for ``n`` samples, drawn on the CPU from ``generator``."""
        raise NotImplementedError

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Images in ``value_range`` from latent ``noise`` (already on the model's device).
        Conditional models take ``sample(noise, labels)``."""
        raise NotImplementedError

    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``sample`` for any model: conditional ones get ``labels`` (default: classes in turn,
        so any ``n`` is as class-balanced as it can be)."""
        if not self.conditional:
            return self.sample(noise)
        if labels is None:
            labels = balanced_labels(noise.shape[0], self.num_classes)
        return self.sample(noise, labels.to(noise.device))

    def grids(self, noise: torch.Tensor, real: Batch) -> dict[str, torch.Tensor]:
        """Images to save as grids during training: name -> images in ``value_range``."""
        return {"samples": self.generate(noise)}

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Map images from ``value_range`` to [0, 1]."""
        if self.value_range == "symmetric":
            images = (images + 1) / 2
        return images.clamp(0, 1)


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: ``n`` labels, each class within one of the others' count."""
    return torch.arange(n) % num_classes


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
