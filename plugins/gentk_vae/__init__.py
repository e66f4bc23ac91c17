"""gentk's built-in VAE plugin (the seed report's section 1-2)."""

from gentk import ModelSpec, TrainDefaults, hookimpl

from .model import VAEModel, VAEOptions, evaluate, kl_divergence, reconstruction_loss

__all__ = ["VAEModel", "VAEOptions", "kl_divergence", "reconstruction_loss"]


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="vae",
        options=VAEOptions,
        defaults=TrainDefaults(epochs=250, batch_size=64, lr=1e-4),
        description="Convolutional VAE on 64x64 images (seed section 1-2)",
    ))


@hookimpl
def build_model(name, options):
    if name == "vae":
        return VAEModel(options)


def _is_mine(model) -> bool:
    # Exactly this class: subclasses (ControlVAE, third-party beta-VAEs) bring their own hooks.
    return type(model) is VAEModel


@hookimpl
def compute_loss(model, phase, batch, state):
    if not isinstance(model, VAEModel) or phase != "vae":
        return None
    recon, kl = model.losses(batch)
    beta = state.adjust_beta(kl)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "beta": beta}


@hookimpl
def adjust_beta(model, state, kl):
    if _is_mine(model):
        return model.options.beta


@hookimpl
def on_epoch_end(model, state, eval_batches):
    if isinstance(model, VAEModel):
        return evaluate(model, state, eval_batches)
