"""What a model's hooks see of training: step, epoch, KL weight, and plugin state."""

from __future__ import annotations


class TrainState:
    """Mutable training state handed to every hook.

    ``extra`` is the plugins' own JSON-serialisable state (a controller's
    integrator, say); it is saved in every checkpoint and restored on resume.
    """

    def __init__(self, batch_size: int, device, adjust=None, reduce=None):
        self.step = 0
        self.epoch = 0
        self.beta = 1.0
        self.extra: dict = {}
        self.elapsed = 0.0
        self.skipped_nonfinite = 0
        self.batch_size = batch_size
        self.device = device
        self._adjust = adjust
        self._reduce = reduce  # under torchrun: the KL averaged over ranks, so every rank gets the same beta

    def adjust_beta(self, kl):
        """Ask the ``adjust_beta`` hook for this step's KL weight; returns it."""
        if self._adjust is not None:
            if self._reduce is not None:
                kl = self._reduce(kl)
            beta = self._adjust(kl)
            if beta is not None:
                self.beta = float(beta)
        return self.beta

    def to_json(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "beta": self.beta,
                "extra": self.extra, "elapsed": self.elapsed, "skipped_nonfinite": self.skipped_nonfinite}

    def load_json(self, data: dict) -> None:
        self.step = int(data["step"])
        self.epoch = int(data["epoch"])
        self.beta = float(data["beta"])
        self.extra = dict(data.get("extra") or {})
        self.elapsed = float(data.get("elapsed", 0.0))
        self.skipped_nonfinite = int(data.get("skipped_nonfinite", 0))
