"""`gentk train MODEL --config FILE`: settings from a TOML file or a run's config.json.

Keys are the option names (``batch_size``, ``lr``, ``target_kl``, ...); a run's
config.json nests the model's options under ``options``, which is read the same
way. Unknown keys, values of the wrong type and a file written for another
model are refused, naming the key.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

from .config import CONFIG_FIELDS, TrainConfig, cli_settings
from .errors import UsageError
from .options import check_value, option_fields
from .safeio import MiB, read_text
from .schema import parse_json

#: Keys of a run's config.json that record the run rather than set it.
RECORD_KEYS = {"gentk_version", "display", "plugins", "world_size", "planned_steps", "data_fingerprint", "class_names"}
#: What a config file may set beyond the options: a preset.
EXTRA_KEYS = {"preset"}


def read_config_file(path: str | Path, spec) -> dict:
    """The settings in ``path`` for model ``spec``, flat (``{"lr": 0.001, "target_kl": 8.0}``),
    checked against TrainConfig's fields and the model's options."""
    path = Path(path)
    text = read_text(path, 1 * MiB, UsageError, "config file")
    if path.suffix == ".json":
        data = parse_json(text, path, UsageError, "config file")
    else:
        data = _toml(text, path)
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a table of settings, got {type(data).__name__}")
    model = data.get("model")
    if model is not None and model != spec.name:
        raise UsageError(f"--config {path} is for model {model!r}, not {spec.name!r}")
    flat = {k: v for k, v in data.items() if k not in RECORD_KEYS and k != "model"}
    nested = flat.pop("options", {})
    if not isinstance(nested, dict):
        raise UsageError(f"--config {path}: 'options' must be a table of the model's options")
    clash = sorted(set(nested) & set(flat))
    if clash:
        raise UsageError(f"--config {path}: {clash[0]!r} is given twice (at the top and under options)")
    flat.update(nested)
    if isinstance(flat.get("logger"), str):  # logger = "tensorboard": one logger
        flat["logger"] = [flat["logger"]]
    return check_settings(flat, spec, f"--config {path}")


def preset_problem(spec, value) -> str | None:
    """Why ``value`` is not one of the model's presets (None when it is): one wording for the file and --preset."""
    if isinstance(value, str) and value in spec.presets:
        return None
    return f"preset {value!r} is not one of {spec.name}'s presets ({', '.join(sorted(spec.presets)) or 'it has none'})"


def check_settings(settings: dict, spec, where: str) -> dict:
    """Every key a gentk setting or an option of the model, of the right type."""
    hints = typing.get_type_hints(TrainConfig)
    train_fields = {f.name: f for f in cli_settings()}
    model_fields = dict(option_fields(spec.options))
    for key, value in settings.items():
        if key in train_fields:
            _check_train_value(key, hints[key], value, where)
            choices = train_fields[key].metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise UsageError(f"{where}: --{key.replace('_', '-')} must be one of {', '.join(choices)} "
                                 f"(got {json.dumps(value)})")
        elif key in model_fields:
            f, hint = model_fields[key]
            try:
                check_value(f, hint, value)
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
        elif key == "preset":
            if problem := preset_problem(spec, value):
                raise UsageError(f"{where}: {problem}")
        else:
            known = sorted(set(train_fields) | set(model_fields) | EXTRA_KEYS)
            hint = "" if key in CONFIG_FIELDS else f"; {spec.name} takes: {', '.join(known)}"
            raise UsageError(f"{where}: unknown key {key!r}{hint}")
    return settings


def _check_train_value(key: str, hint, value, where: str) -> None:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if value is None and args:
        return
    ok = (isinstance(value, bool) if base is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if base is float else
          isinstance(value, int) and not isinstance(value, bool) if base is int else
          isinstance(value, list) and all(isinstance(v, str) for v in value) if base is list else isinstance(value, base))
    if not ok:
        kind = {bool: "true or false", float: "a number", int: "an integer", str: "a string",
                list: "a list of names"}.get(base, base.__name__)
        raise UsageError(f"{where}: --{key.replace('_', '-')} must be {kind} (got {json.dumps(value)})")


def _toml(text: str, path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path} is not valid TOML ({exc})") from None
