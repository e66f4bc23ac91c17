"""The ControlVAE PI controller for the KL weight, as a small pure function.

The seed (and the ControlVAE paper's code) integrates only while
``beta_min < beta <= beta_max``. That rule latches: once beta sits at beta_min
with I <= -Kp, nothing integrates again and beta stays at beta_min whatever the
KL does; and while beta is clamped at beta_max it keeps integrating (wind-up).
``anti_windup="conditional"`` (the default) freezes I only while the output is
saturated AND the error pushes it further into saturation.

``error_clip`` bounds the error the integrator sees. A wide network's KL can
start in the thousands of nats for a few steps; fed whole to the integrator
it sets beta near beta_max at once, and the posterior collapses (KL ~0) and
stays collapsed after beta comes back down. None (the default) is the seed's
unbounded error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PIController:
    target_kl: float
    kp: float = 0.01
    ki: float = 0.001
    beta_min: float = 1.0
    beta_max: float = 50.0
    anti_windup: str = "conditional"  # or "seed"
    error_clip: float | None = None

    def step(self, kl: float, beta: float, integral: float) -> tuple[float, float]:
        """One update from the batch KL: returns (new beta, new integral)."""
        error = self.target_kl - kl
        # Kp / (1 + exp(e)), without overflow for large errors.
        p = self.kp / (1.0 + math.exp(error)) if error < 700 else 0.0
        drive = error if self.error_clip is None else min(max(error, -self.error_clip), self.error_clip)
        proposed = integral - self.ki * drive
        if self.anti_windup == "seed":
            integral = proposed if self.beta_min < beta <= self.beta_max else integral
        else:
            unclamped = p + integral + self.beta_min
            pushes_up = proposed > integral
            saturated_high = unclamped >= self.beta_max and pushes_up
            saturated_low = unclamped <= self.beta_min and not pushes_up
            if not (saturated_high or saturated_low):
                integral = proposed
        new_beta = min(max(p + integral + self.beta_min, self.beta_min), self.beta_max)
        return new_beta, integral
