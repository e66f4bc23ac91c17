"""gentk's own plugin: the built-in datasets, and the model hooks answered by the model's methods.

It is registered before every other plugin. Its answers to the firstresult
hooks (build_model, compute_loss, adjust_beta) are ``trylast``: any plugin's
answer comes first, the model's method is the default. on_step and
on_epoch_end call every plugin; there the model's own method runs first
(``tryfirst``), so plugins see its update (a clipped critic, an EMA) and
extend its metrics; a plugin that must run before it uses ``tryfirst`` too.
"""

from __future__ import annotations

from .hookspecs import hookimpl

#: The name this plugin is registered under.
NAME = "gentk-core"


@hookimpl
def register_datasets(register):
    from .data.builtin import BUILTIN_DATASETS

    for spec in BUILTIN_DATASETS:
        register(spec)


@hookimpl
def register_loggers(register):
    from .loggers import BUILTIN_LOGGERS

    for spec in BUILTIN_LOGGERS:
        register(spec)


@hookimpl(trylast=True)
def build_model(options, spec):
    if spec is not None and spec.model is not None:
        return spec.model(options)


@hookimpl(trylast=True)
def compute_loss(model, phase, batch, state):
    return model.compute_loss(phase, batch, state)


@hookimpl(tryfirst=True)
def on_step(model, phase, state, metrics):
    model.on_step(phase, state, metrics)


@hookimpl(trylast=True)
def adjust_beta(model, state, kl):
    return model.adjust_beta(state, kl)


@hookimpl(tryfirst=True)
def on_epoch_end(model, state, eval_batches):
    return model.evaluate(state, eval_batches)
