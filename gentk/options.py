"""Model option dataclasses -> click options, JSON dicts, and back."""

from __future__ import annotations

import dataclasses
import math
import types
import typing

import click

from .errors import UsageError


def option(default, help: str, choices: tuple | None = None, min=None, max=None, below=None, above=None):
    """A model option field: ``dim_z: int = option(10, "latent size", min=1)``. ``min``/``max``
    bound it inclusively, ``above``/``below`` exclusively (``ema: float = option(0.0, ..., min=0, below=1)``);
    values outside are refused, naming the flag, before anything is built."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "min": min, "max": max,
                                                        "below": below, "above": above})


def image_size_option(sizes: tuple[int, ...], default: int):
    """An ``image_size`` option field (``--image-size``) for a model whose networks exist at ``sizes``."""
    return option(default, f"Image side in pixels, one of {', '.join(map(str, sizes))}; how the networks "
                           "scale: gentk models MODEL --image-size N.", choices=tuple(sizes))


def channels_option():
    """A ``channels`` option field (``--channels``): None until gentk sets it to the data's channels."""
    return option(None, "Image channels, 1 or 3; default: the data's (3 if any image has colour).", choices=(1, 3))


def _fields(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name]


def option_fields(cls) -> list:
    """(name, (field, type)) for each option of an options dataclass."""
    return [(f.name, (f, typ)) for f, typ in _fields(cls)]


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def naming_the_source(error: Exception, keys, source: str) -> Exception:
    """``error`` with ``source`` (``--preset recon``, ``--config p.toml``) named when it refuses the value
    of one of ``keys``, settings that source set and the user did not type (``--batch-size 32 is more
    than ...``): the user would look for a flag they never gave."""
    for key in keys:
        flag = flag_name(key)
        if str(error).startswith(flag + " "):
            error.args = (f"{error} ({source} sets {flag}; give {flag} yourself to change it)",)
            break
    return error


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
    """An options instance from a dict (CLI kwargs or config.json); unknown keys, values of the
    wrong type and values out of range are refused, naming the flag."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown option(s) for this model: {', '.join(unknown)}")
    for f, typ in _fields(cls):
        if f.name in values:
            values = dict(values, **{f.name: check_value(f, typ, values[f.name])})
    return cls(**{k: v for k, v in values.items() if k in names})


def check_value(f, typ, value):
    """``value`` for option field ``f`` of type ``typ``, checked (ints are accepted for floats)."""
    flag, meta = flag_name(f.name), f.metadata
    base = click_type(typ) if typ is not bool else bool
    optional = typing.get_origin(typ) in (typing.Union, types.UnionType) and type(None) in typing.get_args(typ)
    if value is None and optional:
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if base in (int, float) and isinstance(value, bool) or not isinstance(value, base):
        raise UsageError(f"{flag} must be {'a number' if base is float else 'an integer' if base is int else base.__name__} "
                         f"(got {value!r})")
    if base is float and not math.isfinite(value):
        raise UsageError(f"{flag} must be finite (got {value})")
    if meta.get("choices") and value not in meta["choices"]:
        raise UsageError(f"{flag} must be one of {', '.join(map(str, meta['choices']))} (got {value!r})")
    if meta.get("min") is not None and value < meta["min"]:
        raise UsageError(f"{flag} must be at least {meta['min']} (got {value})")
    if meta.get("above") is not None and value <= meta["above"]:
        raise UsageError(f"{flag} must be above {meta['above']} (got {value})")
    if meta.get("max") is not None and value > meta["max"]:
        raise UsageError(f"{flag} must be at most {meta['max']} (got {value})")
    if meta.get("below") is not None and value >= meta["below"]:
        raise UsageError(f"{flag} must be below {meta['below']} (got {value})")
    return value


def parse_setting(cls, text: str) -> tuple[str, object]:
    """``KEY=VALUE`` (``width=2``, ``--width=2``, ``dim-z=32``) as (field name, typed value) for the options
    dataclass ``cls``; the value is converted to the option's type, then checked by ``build_options``."""
    key, sep, raw = text.partition("=")
    name = key.strip().lstrip("-").replace("-", "_")
    if not sep or not name:
        raise UsageError(f"--set takes KEY=VALUE, e.g. --set width=2 (got {text!r})")
    fields = dict(option_fields(cls))
    if name not in fields:
        raise UsageError(f"no option {flag_name(name)}: the model's options are "
                         f"{', '.join(flag_name(n) for n in fields)}")
    f, typ = fields[name]
    raw = raw.strip()
    if typ is bool:
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"{flag_name(name)} is true or false (got {raw!r})")
        return name, lowered in ("true", "1", "yes")
    base = click_type(typ)
    try:
        return name, base(raw)
    except ValueError:
        check_value(f, typ, raw)  # text where a number belongs: refused in check_value's words
        raise


def options_dict(options) -> dict:
    return dataclasses.asdict(options)


def option_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}
