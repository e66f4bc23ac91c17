"""gentk's built-in ControlVAE plugin: the seed's VAE with a PI-controlled KL weight (section 1-4)."""

from __future__ import annotations

from dataclasses import dataclass

from gentk import ModelSpec, TrainDefaults, hookimpl, option
from gentk_vae import VAEModel, evaluate, vae_loss

from .controller import PIController

__all__ = ["ControlVAEModel", "ControlVAEOptions", "PIController"]


@dataclass
class ControlVAEOptions:
    dim_z: int = option(10, "Size of the latent code.")
    target_kl: float = option(14.0, "KL the controller holds the model at (the seed ran 8 and 14).")
    kp: float = option(0.01, "Proportional gain.")
    ki: float = option(0.001, "Integral gain.")
    beta_min: float = option(1.0, "Lower bound of the KL weight.")
    beta_max: float = option(50.0, "Upper bound of the KL weight.")
    beta_init: float = option(0.0, "Initial beta fed to the controller (the seed's 0).")
    i_init: float = option(0.0, "Initial integral term.")
    anti_windup: str = option("conditional", "conditional: freeze I only when saturated and pushed further; "
                              "seed: the report's rule (can latch at beta_min).", choices=("conditional", "seed"))


class ControlVAEModel(VAEModel):
    def __init__(self, options: ControlVAEOptions):
        super().__init__(options)
        o = options
        self.controller = PIController(o.target_kl, o.kp, o.ki, o.beta_min, o.beta_max, o.anti_windup)


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="controlvae",
        options=ControlVAEOptions,
        defaults=TrainDefaults(epochs=250, batch_size=64, lr=1e-4),
        description="VAE whose KL weight a PI controller sets to hold a target KL (seed section 1-4)",
    ))


@hookimpl
def build_model(name, options):
    if name == "controlvae":
        return ControlVAEModel(options)


def _is_mine(model) -> bool:
    return type(model) is ControlVAEModel


@hookimpl
def compute_loss(model, phase, batch, state):
    if _is_mine(model):
        return vae_loss(model, batch, state)


@hookimpl
def adjust_beta(model, state, kl):
    if not _is_mine(model):
        return None
    ctl = state.extra.setdefault("controller", {"beta": model.options.beta_init, "I": model.options.i_init})
    beta, integral = model.controller.step(float(kl.detach()), ctl["beta"], ctl["I"])
    ctl["beta"], ctl["I"] = beta, integral
    return beta


@hookimpl
def on_step(model, phase, state, metrics):
    if _is_mine(model):
        metrics["target_kl"] = model.options.target_kl
        metrics["integral"] = state.extra["controller"]["I"]


@hookimpl
def on_epoch_end(model, state, eval_batches):
    if _is_mine(model):
        return evaluate(model, state, eval_batches)
