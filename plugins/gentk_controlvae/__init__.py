"""gentk's built-in ControlVAE plugin: the seed's VAE with a PI-controlled KL weight (section 1-4)."""

from __future__ import annotations

from dataclasses import dataclass

from gentk import ModelSpec, TrainDefaults, hookimpl, option
from gentk.errors import UsageError
from gentk.options import channels_option, image_size_option
from gentk_vae import VAEModel
from gentk_vae.model import width_option
from gentk_vae.networks import IMAGE_SIZES

from .controller import PIController

__all__ = ["ControlVAEModel", "ControlVAEOptions", "PIController"]


@dataclass
class ControlVAEOptions:
    dim_z: int = option(10, "Size of the latent code.", min=1, max=4096)
    width: int = width_option(" At width 2 without --error-clip the posterior collapsed in the first steps "
                              "(--preset recon sets both): see docs/models.md (controlvae).")
    target_kl: float = option(14.0, "KL the controller holds the model at (the seed ran 8 and 14).", min=0)
    kp: float = option(0.01, "Proportional gain.", min=0)
    ki: float = option(0.001, "Integral gain.", min=0)
    beta_min: float = option(1.0, "Lower bound of the KL weight.", min=0)
    beta_max: float = option(50.0, "Upper bound of the KL weight.", min=0)
    beta_init: float = option(0.0, "Initial beta fed to the controller (the seed's 0).")
    i_init: float = option(0.0, "Initial integral term.")
    anti_windup: str = option("conditional", "conditional: freeze I only when saturated and pushed further; "
                              "seed: the report's rule (can latch at beta_min).", choices=("conditional", "seed"))
    error_clip: float | None = option(None, "Largest |KL - target| in nats one step feeds the integral term "
                                      "(the seed: unbounded). Bounds the jump of beta when a wide network's "
                                      "KL starts in the thousands; above 0; default: none (leave it out).", above=0)
    image_size: int = image_size_option(IMAGE_SIZES, 64)
    channels: int | None = channels_option()


# The VAE's fast preset, and an integrator 20x the seed's: at Adam 1e-3 the KL the model wants
# drifts up as it learns, and Ki 0.001-0.005 trailed the target by ~1 nat (docs/models.md "Presets").
FAST = {"lr": 1e-3, "lr_schedule": "cosine", "ki": 0.02, "epochs": 25}


class ControlVAEModel(VAEModel):
    """The VAE whose beta a PI controller sets each step; its state lives in state.extra["controller"]."""

    figures = {"kl_beta": (("kl", "target_kl"), ("beta",))}

    def __init__(self, options: ControlVAEOptions):
        super().__init__(options)
        o = options
        if o.beta_min > o.beta_max:
            raise UsageError(f"--beta-min {o.beta_min} is above --beta-max {o.beta_max}")
        self.controller = PIController(o.target_kl, o.kp, o.ki, o.beta_min, o.beta_max, o.anti_windup,
                                       o.error_clip)

    def adjust_beta(self, state, kl):
        o = self.options
        ctl = state.extra.setdefault("controller", {"beta": o.beta_init, "I": o.i_init})
        beta, integral = self.controller.step(float(kl.detach()), ctl["beta"], ctl["I"])
        ctl["beta"], ctl["I"] = beta, integral
        return beta

    def on_step(self, phase, state, metrics):
        metrics["target_kl"] = self.options.target_kl
        metrics["integral"] = state.extra["controller"]["I"]


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="controlvae",
        model=ControlVAEModel,
        options=ControlVAEOptions,
        defaults=TrainDefaults(epochs=250, batch_size=64, lr=1e-4),
        description="VAE whose KL weight a PI controller sets to hold a target KL (seed section 1-4)",
        # recon: the VAE's recon preset's network width, with the integrator's error bounded (a wide
        # network's first-steps KL spike otherwise collapses the posterior), and batches of 20: more updates,
        # whose batch KL the controller still held within 0.5 nats (16 did not; docs/models.md).
        presets={"fast": FAST, "recon": {**FAST, "width": 2, "error_clip": 14.0, "batch_size": 20}},
    ))
