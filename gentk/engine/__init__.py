"""The training engine: the loop (``loop``), checkpoints with RNG and data position
(``checkpoints``), buffered metrics with throughput (``metrics``), and stop signals (``signals``)."""

from .loop import Trainer, default_run_dir, train
from .metrics import NonFiniteLoss
from .signals import TrainingInterrupted

__all__ = ["NonFiniteLoss", "Trainer", "TrainingInterrupted", "default_run_dir", "train"]
