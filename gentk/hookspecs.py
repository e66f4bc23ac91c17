"""Hook specifications: everything a model plugin can do, one docstring each.

Hooks are always called with keyword arguments. For a firstresult hook pluggy
calls the most recently registered plugin first, so a third-party plugin can
override a built-in by answering for the same model.
"""

import pluggy

#: Bumped, and noted in CHANGELOG.md, whenever a hook is added or changes. A hook
#: argument on its way out is declared with pluggy's ``warn_on_impl_args`` so that
#: plugins still using it get a warning, not an error, for at least one release.
HOOKSPEC_VERSION = 1

hookspec = pluggy.HookspecMarker("gentk")


@hookspec
def register_models(register):
    """Call ``register(ModelSpec(...))`` for each model this plugin provides."""


@hookspec(firstresult=True)
def build_model(name, options):
    """Return the ``GenerativeModel`` for ``name`` built from its options dataclass,
    or None if this plugin does not own ``name``. Stops at first non-None result."""


@hookspec(firstresult=True)
def compute_loss(model, phase, batch, state):
    """Return a dict of scalar tensors with ``loss`` (to back-propagate) and any
    other values worth logging, for one optimizer step of ``phase``; None if the
    model is not this plugin's. ``batch`` is a float tensor in the model's value
    range, or None for phases that use no data. Stops at first non-None result."""


@hookspec
def on_step(model, phase, state, metrics):
    """Called after every optimizer step of every phase (weight clipping, EMA,
    extra metrics: add entries to ``metrics`` in place)."""


@hookspec(firstresult=True)
def adjust_beta(model, state, kl):
    """Return the KL weight to use for the current step given the batch KL
    (a 0-d tensor), or None to leave ``state.beta`` unchanged. Called by a
    model's loss through ``state.adjust_beta(kl)``. Stops at first non-None result."""


@hookspec
def on_epoch_end(model, state, eval_batches):
    """Return a dict of held-out metrics for the finished epoch (or None).
    ``eval_batches`` yields held-out batches in the model's value range."""
