"""Model option dataclasses -> click options, JSON dicts, and back."""

from __future__ import annotations

import dataclasses
import types
import typing

import click

from .errors import UsageError


def option(default, help: str, choices: tuple | None = None):
    """A model option field: ``dim_z: int = option(10, "latent size")``."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _fields(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name]


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def click_options(cls) -> list[click.Option]:
    """One click option per dataclass field, default and help from the field."""
    out = []
    for f, typ in _fields(cls):
        meta = f.metadata
        help_text = meta.get("help", "")
        default = f.default
        name = flag_name(f.name)
        if typ is bool:
            opt = click.Option([f"{name}/--no-{name[2:]}", f.name], default=default,
                               show_default=True, help=help_text)
        else:
            ctype = click.Choice(meta["choices"]) if meta.get("choices") else click_type(typ)
            opt = click.Option([name, f.name], type=ctype, default=default,
                               show_default=True, help=help_text)
        out.append(opt)
    return out


def click_type(typ):
    origin = typing.get_origin(typ)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X], X | None
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return click_type(args[0])
    return {int: int, float: float, str: str}.get(typ, str)


def build_options(cls, values: dict):
    """An options instance from a dict (CLI kwargs or config.json); unknown keys are refused."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown option(s) for this model: {', '.join(unknown)}")
    return cls(**{k: v for k, v in values.items() if k in names})


def options_dict(options) -> dict:
    return dataclasses.asdict(options)


def option_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}
