"""Hook specifications: everything a plugin can do, one docstring each.

Hooks are always called with keyword arguments; an implementation may take
any subset of them. gentk's own core plugin answers the model hooks last
(``trylast``) by calling the model's own methods, so a model's behaviour lives
on its class; a plugin that changes another plugin's model implements the
hook with ``@gentk.hookimpl(tryfirst=True)`` and returns None where it has
nothing to say. docs/plugins.md is the reference.
"""

import pluggy

#: Bumped, and noted in CHANGELOG.md, whenever a hook is added or changes. A hook
#: argument on its way out is declared with pluggy's ``warn_on_impl_args`` so that
#: plugins still using it get a warning, not an error, for at least one release.
HOOKSPEC_VERSION = 2

hookspec = pluggy.HookspecMarker("gentk")
#: Decorator for hook implementations in plugins: ``@gentk.hookimpl``.
hookimpl = pluggy.HookimplMarker("gentk")

#: The hooks called with a model during training and sampling (they act on a run).
MODEL_HOOKS = ("build_model", "compute_loss", "on_step", "adjust_beta", "on_epoch_end")


@hookspec
def register_models(register):
    """Call ``register(ModelSpec(...))`` for each model this plugin provides."""


@hookspec
def register_datasets(register):
    """Call ``register(DatasetSpec(...))`` for each dataset this plugin provides
    (``--data NAME`` or ``--data NAME:ARG``)."""


@hookspec
def register_loggers(register):
    """Call ``register(gentk.loggers.LoggerSpec(...))`` for each logger this plugin provides
    (``gentk train ... --logger NAME``)."""


@hookspec
def register_commands(cli):
    """Add subcommands to the ``gentk`` click group: ``@cli.command()``."""


@hookspec(firstresult=True)
def build_model(name, options, spec):
    """Return the ``GenerativeModel`` for model ``name`` (its ``ModelSpec`` is ``spec``) built
    from its options dataclass, or None. Default: ``spec.model(options)``. First non-None wins."""


@hookspec(firstresult=True)
def compute_loss(model, phase, batch, state):
    """Return a dict of scalars with ``loss`` (to back-propagate) and any other values worth
    logging, for one optimizer step of ``phase``, or None. ``batch`` is a ``gentk.Batch``, or None
    for phases that use no data. Default: ``model.compute_loss(phase, batch, state)``."""


@hookspec
def on_step(model, phase, state, metrics):
    """Called after every optimizer step of every phase (weight clipping, EMA, extra metrics:
    add entries to ``metrics`` in place). Default: ``model.on_step(phase, state, metrics)``."""


@hookspec(firstresult=True)
def adjust_beta(model, state, kl):
    """Return the KL weight to use for the current step given the batch KL (a 0-d tensor),
    or None. Called by a model's loss through ``state.adjust_beta(kl)``.
    Default: ``model.adjust_beta(state, kl)``, else ``state.beta`` unchanged."""


@hookspec
def on_epoch_end(model, state, eval_batches):
    """Return a dict of held-out metrics for the finished epoch (or None). ``eval_batches``
    yields ``gentk.Batch`` objects of the test split. Default: ``model.evaluate(state, eval_batches)``."""
