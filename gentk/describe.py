"""A model's networks, parameter counts and options, for `gentk models MODEL`."""

from __future__ import annotations

import dataclasses

from .model import parameter_count
from .options import option_defaults
from .plugins import Registry


def describe_model(registry: Registry, name: str, overrides: dict | None = None) -> dict:
    """``overrides``: option values to build with (``image_size``, ``channels``), checked as
    `gentk train` checks them; an option the model lacks is refused."""
    from .errors import UsageError
    from .options import build_options, options_dict

    spec = registry.spec(name)
    values = option_defaults(spec.options)
    for key, value in (overrides or {}).items():
        if key not in values:
            raise UsageError(f"model {name} has no --{key.replace('_', '-')} option")
        values[key] = value
    model = registry.build_model(spec, options_dict(build_options(spec.options, values)))
    networks = {net: {"parameters": parameter_count(module)} for net, module in model.networks().items()}
    options = {f.name: {"default": f.default, "help": f.metadata.get("help", "")}
               for f in dataclasses.fields(spec.options)}
    d = spec.defaults
    return {
        "name": name,
        "description": spec.description,
        "parameters": parameter_count(model),
        "networks": networks,
        "options": options,
        "training_defaults": {"epochs": d.epochs, "batch_size": d.batch_size, "lr": d.lr,
                              "data_fraction": d.data_fraction},
        "presets": spec.presets,
        "image": {"size": model.image_size, "channels": model.channels, "value_range": model.value_range,
                  "fit": model.fit},
        "conditional": {"num_classes": model.num_classes} if model.conditional else False,
        "hooks": registry.precedence(name),
    }
