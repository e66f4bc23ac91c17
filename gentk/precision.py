"""--precision fp32|bf16|fp16: autocast around each loss, and for fp16 a gradient scaler per phase."""

from __future__ import annotations

import contextlib

import torch

from .errors import UsageError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """fp32 does nothing. bf16 autocasts (same exponent range as fp32: no scaling needed).

    fp16 autocasts and scales each phase's loss with its own GradScaler, so a
    discriminator overflow does not shrink the generator's scale; the scalers'
    state goes into every checkpoint, so a resumed fp16 run continues with the
    same scales.
    """

    def __init__(self, precision: str, device: torch.device, phases: list[str]):
        self.precision = precision
        self.device = device
        self.dtype = _DTYPES.get(precision)
        if precision == "fp16" and device.type == "mps":
            raise UsageError("--precision fp16 is not supported on MPS; use bf16 or fp32")
        self.scalers = ({name: torch.amp.GradScaler(device.type) for name in phases}
                        if precision == "fp16" else {})

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, phase: str, loss: torch.Tensor) -> None:
        scaler = self.scalers.get(phase)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, phase: str, optimizer: torch.optim.Optimizer) -> None:
        """Unscale, skip the step if the scaled gradients overflowed, adapt the scale."""
        scaler = self.scalers.get(phase)
        if scaler is None:
            optimizer.step()
            return
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict:
        """JSON: each fp16 scaler's scale and growth tracker."""
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scaler in self.scalers.items():
            if name in state:
                scaler.load_state_dict(state[name])
