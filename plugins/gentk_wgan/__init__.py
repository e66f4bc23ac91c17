"""gentk's built-in WGAN plugin: the seed's weight-clipped WGAN (section 2-2), and WGAN-GP."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gentk import ModelSpec, Phase, TrainDefaults, hookimpl, option
from gentk.optim import fast
from gentk.options import channels_option, image_size_option
from gentk_gan import IMAGE_SIZES, GANPair

__all__ = ["WGANModel", "WGANOptions", "clip_weights", "gradient_penalty"]


@dataclass
class WGANOptions:
    noise_dim: int = option(64, "Size of the generator's input noise.", min=1, max=4096)
    n_critic: int = option(20, "Critic updates per generator update.", min=1, max=1000)
    clip: float = option(0.005, "Clip critic weights to [-clip, clip] after each critic step "
                                "(ignored with --gradient-penalty).", min=0)
    gradient_penalty: float = option(0.0, "WGAN-GP: weight of the gradient penalty (10 is standard, "
                                          "with --n-critic 5 as in the paper; 0 = the seed's clipping). "
                                          "Uses Adam (0, 0.9) instead of RMSprop.", min=0)
    ema: float = option(0.0, "Decay of an EMA of the generator used for samples (0 = off).", min=0, below=1)
    image_size: int = image_size_option(IMAGE_SIZES, 28)
    channels: int | None = channels_option()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad critic(x_hat)|| - 1)^2] on random interpolates of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@torch.no_grad()
def clip_weights(module: torch.nn.Module, clip: float) -> None:
    for p in module.parameters():
        p.clamp_(-clip, clip)


class WGANModel(GANPair):
    def phases(self, lr: float):
        if self.options.gradient_penalty > 0:
            make = lambda params: fast(torch.optim.Adam, params, lr=lr, betas=(0.0, 0.9))  # noqa: E731
        else:
            make = lambda params: fast(torch.optim.RMSprop, params, lr=lr)  # noqa: E731
        return [Phase("critic", ["discriminator"], make, repeat=self.options.n_critic),
                Phase("generator", ["generator"], make, uses_data=False)]

    def compute_loss(self, phase, batch, state):
        o = self.options
        if phase == "critic":
            real = batch.images
            with torch.no_grad():  # D needs the fakes, not G's graph: no activations kept for backward
                fake = self.fake(real.shape[0])
            real_score, fake_score = self.discriminator(real).mean(), self.discriminator(fake).mean()
            loss = fake_score - real_score
            out = {"wasserstein": real_score - fake_score}
            if o.gradient_penalty > 0:
                gp = gradient_penalty(self.discriminator, real, fake)
                loss = loss + o.gradient_penalty * gp
                out["gp"] = gp
            out["loss"] = loss
            return out
        return {"loss": -self.discriminator(self.fake(state.batch_size)).mean()}

    def on_step(self, phase, state, metrics):
        if phase == "critic" and self.options.gradient_penalty == 0:
            clip_weights(self.discriminator, self.options.clip)
        elif phase == "generator":
            self.update_ema()


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="wgan",
        model=WGANModel,
        options=WGANOptions,
        defaults=TrainDefaults(epochs=300, batch_size=128, lr=1e-4),
        description="Wasserstein GAN, weight clipping or gradient penalty (seed section 2-2)",
        # WGAN-GP as Gulrajani et al. train it (their lr 1e-4 is already the default).
        presets={"gp": {"gradient_penalty": 10.0, "n_critic": 5}},
    ))
