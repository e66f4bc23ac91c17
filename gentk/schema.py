"""Schemas for the JSON files gentk reads back (config.json, checkpoint sidecars, metrics rows,
fid.json): types, ranges and sizes checked before a value is used, each violation one line
naming the file and the field.

The standard library is enough for this: the files are small, the rules are types and
ranges, and the message must name the field as a user would write it (``data.epoch``),
which a few lines of code do more plainly than a JSON Schema document and its validator.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .errors import GentkError


class Invalid(Exception):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where, self.problem = where, problem


@dataclass
class Int:
    min: int | None = None
    max: int | None = None

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(where, f"must be an integer (got {_show(value)})")
        if self.min is not None and value < self.min:
            raise Invalid(where, f"must be at least {self.min} (got {value})")
        if self.max is not None and value > self.max:
            raise Invalid(where, f"must be at most {self.max} (got {value})")


@dataclass
class Num:
    min: float | None = None
    max: float | None = None
    finite: bool = True

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(where, f"must be a number (got {_show(value)})")
        if self.finite and not math.isfinite(value):
            raise Invalid(where, f"must be finite (got {value})")
        if self.min is not None and value < self.min:
            raise Invalid(where, f"must be at least {self.min} (got {value})")
        if self.max is not None and value > self.max:
            raise Invalid(where, f"must be at most {self.max} (got {value})")


@dataclass
class Str:
    pattern: str | None = None
    max_len: int = 4096

    def check(self, value, where):
        if not isinstance(value, str):
            raise Invalid(where, f"must be a string (got {_show(value)})")
        if len(value) > self.max_len:
            raise Invalid(where, f"is longer than {self.max_len} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Invalid(where, f"is not of the form {self.pattern} (got {value[:40]!r})")


class Bool:
    def check(self, value, where):
        if not isinstance(value, bool):
            raise Invalid(where, f"must be true or false (got {_show(value)})")


class Scalar:
    """A JSON number, string, boolean or null (option values, logged metrics); integers within
    what a float holds, strings of at most 1,000 characters."""

    def check(self, value, where):
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise Invalid(where, f"must be a number, string, boolean or null (got {_show(value)})")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 62:
            raise Invalid(where, f"is too large an integer (got {_show(value)})")
        if isinstance(value, str) and len(value) > 1000:
            raise Invalid(where, "is longer than 1000 characters")


class AnyJSON:
    def check(self, value, where):
        pass


@dataclass
class Optional:
    inner: object

    def check(self, value, where):
        if value is not None:
            self.inner.check(value, where)


@dataclass
class List:
    item: object
    max_len: int = 10_000

    def check(self, value, where):
        if not isinstance(value, list):
            raise Invalid(where, f"must be a list (got {_show(value)})")
        if len(value) > self.max_len:
            raise Invalid(where, f"has more than {self.max_len} entries")
        for i, v in enumerate(value):
            self.item.check(v, f"{where}[{i}]")


@dataclass
class Map:
    """A dict of string keys (matching ``keys`` if given), every value checked by ``value``."""

    value: object
    max_len: int = 10_000
    keys: str | None = None

    def check(self, data, where):
        if not isinstance(data, dict):
            raise Invalid(where, f"must be an object (got {_show(data)})")
        if len(data) > self.max_len:
            raise Invalid(where, f"has more than {self.max_len} entries")
        for k, v in data.items():
            if self.keys is not None and not re.fullmatch(self.keys, k):
                raise Invalid(_join(where, k[:40]), f"is not a name of the form {self.keys}")
            self.value.check(v, _join(where, k))


@dataclass
class Obj:
    """A dict with ``required`` and ``optional`` fields; other keys are checked by ``extra``
    (None: allowed and not checked)."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)
    extra: object | None = None

    def check(self, data, where):
        if not isinstance(data, dict):
            raise Invalid(where, f"must be an object (got {_show(data)})")
        for name, spec in self.required.items():
            if name not in data:
                raise Invalid(_join(where, name), "is missing")
            spec.check(data[name], _join(where, name))
        for name, spec in self.optional.items():
            if name in data:
                spec.check(data[name], _join(where, name))
        if self.extra is not None:
            for name, value in data.items():
                if name not in self.required and name not in self.optional:
                    self.extra.check(value, _join(where, name))


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(data, schema, file, error: type[GentkError]) -> None:
    """Raise ``error("FILE: field X must be ...")`` for the first violation."""
    try:
        schema.check(data, "")
    except Invalid as exc:
        name = f"field {exc.where} " if exc.where else ""
        raise error(f"{file}: {name}{exc.problem}") from None


def parse_json(text: str, file, error: type[GentkError], what: str):
    """json.loads that turns every failure (syntax, nesting too deep, a huge number) into one line."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{file} nests too deeply to be a {what}") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a too-long digit string
        raise error(f"{file} is not readable JSON ({exc}); not a {what}") from None


# -- the files ------------------------------------------------------------------------------

STEP = Int(min=0, max=1 << 62)

SIDECAR = Obj(
    required={
        "format": Int(), "step": STEP, "size": Int(min=0, max=1 << 40), "sha256": Str(r"[0-9a-f]{64}"),
    },
    optional={
        "state": Obj(required={"step": STEP, "epoch": STEP, "beta": Num()},
                     optional={"extra": Map(AnyJSON()), "elapsed": Num(min=0), "skipped_nonfinite": STEP}),
        "data": Obj(required={"epoch": STEP, "cursor": STEP}),
        "optimizers": Map(Obj(required={"param_groups": List(Obj(required={"params": List(Int(min=0))})),
                                        "scalars": Map(AnyJSON())})),
        "precision": Map(AnyJSON()),
        "config": Map(AnyJSON()),
        "gentk_version": Str(),
    },
)

#: What a checkpoint needs for --resume beyond what sampling needs.
RESUMABLE = Obj(required={k: SIDECAR.optional[k] for k in ("state", "data", "optimizers")})

METRICS_ROW = Obj(required={"step": STEP, "epoch": STEP}, optional={"split": Str(max_len=32)}, extra=Scalar())

FID_RESULT = Obj(optional={"scores": Map(Num(finite=False))})
