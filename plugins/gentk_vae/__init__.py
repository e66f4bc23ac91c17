"""gentk's built-in VAE plugin (the seed report's section 1-2)."""

from gentk import ModelSpec, TrainDefaults, hookimpl

from .model import VAEModel, VAEOptions, evaluate, kl_divergence, reconstruction_loss, vae_loss

__all__ = ["VAEModel", "VAEOptions", "evaluate", "kl_divergence", "reconstruction_loss", "vae_loss"]


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
    # Exactly this class: subclasses (ControlVAE, third-party beta-VAEs) are other
    # plugins' models and answer their own hooks, reusing vae_loss and evaluate.
    return type(model) is VAEModel


@hookimpl
def compute_loss(model, phase, batch, state):
    if _is_mine(model):
        return vae_loss(model, batch, state)


@hookimpl
def adjust_beta(model, state, kl):
    if _is_mine(model):
        return model.options.beta


@hookimpl
def on_epoch_end(model, state, eval_batches):
    if _is_mine(model):
        return evaluate(model, state, eval_batches)
