"""The training configuration a run is built from and resumed against."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields

import torch

from .errors import UsageError
from .model import FITS


def setting(default, help: str, choices: tuple | None = None, model_default: bool = False):
    """A TrainConfig field that is also a `gentk train` option: its help and choices live here,
    and the CLI is generated from them. ``model_default``: each model's TrainDefaults sets it."""
    meta = {"help": help, "choices": choices, "model_default": model_default}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str
    options: dict = field(default_factory=dict)
    epochs: int = setting(1, "Passes over the training data.", model_default=True)
    batch_size: int = setting(64, "Images per batch (per process under torchrun).", model_default=True)
    lr: float = setting(1e-4, "Learning rate.", model_default=True)
    lr_schedule: str = setting("constant", "Learning rate over the run: constant (the seed's), or cosine: from --lr "
                                           "down to 0 along half a cosine over the run's steps, per optimizer.",
                               choices=("constant", "cosine"))
    data_fraction: float = setting(1.0, "Train on this fraction of the training split.", model_default=True)
    max_steps: int | None = setting(None, "Stop after this many steps (a step runs every phase once); "
                                          "default: as many as --epochs takes.")
    seed: int = setting(0, "Seed for weights, noise and data order; CPU runs repeat bitwise.")
    data: str = setting("mnist", "Dataset: NAME or NAME:ARG, e.g. mnist, fashion-mnist, cifar10, folder:PATH "
                                 "(a folder of images; class subfolders give labels); `gentk datasets` lists all.")
    data_root: str | None = setting(None, "Folder holding a dataset's downloaded files: torchvision's MNIST/raw or "
                                          "FashionMNIST/raw, or cifar-10-batches-py (or -bin).")
    fit: str | None = setting(None, "How images of another size or shape become the model's square: crop (the "
                                    "centred square, resized), pad (black borders to a square, then padded up or "
                                    "resized down), resize (stretched); default: the model's (crop; pad for ssgan, "
                                    "as the seed padded MNIST).",
                              choices=("crop", "pad", "resize"))
    max_data_memory: str | None = setting(None, "Largest decoded dataset kept on the device, e.g. 512MB, 4GB; a larger "
                                                "one is read from its on-disk cache batch by batch, with the same "
                                                "batches. Default: a quarter of the device's memory (RAM on the CPU).")
    device: str = setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
    sample_every: int = setting(500, "Save sample grids every N steps (and at step 0 and the end).")
    checkpoint_every: int = setting(1000, "Write a checkpoint every N steps (and at the end).")
    keep_checkpoints: int = setting(3, "How many recent checkpoints to keep.")
    log_every: int = setting(10, "Write buffered metrics every N steps (one row per step).")
    eval_limit: int | None = setting(None, "Use at most N held-out images for per-epoch evaluation; default: all.")
    on_nan: str = setting("stop", "On a NaN/inf loss: stop (last checkpoint kept) or skip the step "
                                  "(counted in metrics).", choices=("stop", "skip"))
    precision: str = setting("fp32", "Autocast arithmetic: bf16 or fp16 (with loss scaling) are faster on "
                                     "recent GPUs; fp32 repeats bitwise on the CPU.", choices=("fp32", "bf16", "fp16"))
    compile: bool = setting(False, "torch.compile the networks (slow first steps, faster after; needs a C++ "
                                   "compiler on the CPU).")
    compile_mode: str = setting("default", "torch.compile mode used with --compile: reduce-overhead also replays "
                                           "CUDA graphs on a GPU (fewest kernel launches; for small networks), "
                                           "max-autotune searches kernels (slow to start).",
                                choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    sync_bn: bool = setting(False, "Batch-norm statistics over all GPUs of a torchrun job (CUDA only).")
    logger: list = setting([], "Also log to NAME (repeatable): tensorboard (event files in RUN/tensorboard; "
                               "pip install 'gentk[tensorboard]'), or a plugin's logger; metrics.jsonl is always written.")
    #: Processes training together (set from torchrun's WORLD_SIZE, not an option):
    #: each takes --batch-size images, so it is part of what a run trains.
    world_size: int = 1
    #: The plugins whose hooks act on this run's model (name, distribution, version), set by the engine.
    plugins: list = field(default_factory=list)
    #: What the data were (a folder's file list, as sha256), set by the engine: --resume refuses changed data.
    data_fingerprint: str | None = None
    #: The name of each label (class subfolders, a dataset's classes), set by the engine; None without labels.
    class_names: list | None = None

    def validate(self) -> None:
        from .schema import validate

        if isinstance(self.seed, int):
            check_seed(self.seed)
        validate(self.to_dict(), config_schema(), "settings", UsageError)  # the types, before the ranges
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "sample_every": self.sample_every,
                    "checkpoint_every": self.checkpoint_every, "keep_checkpoints": self.keep_checkpoints,
                    "log_every": self.log_every}
        if self.max_steps is not None:
            positive["max_steps"] = self.max_steps
        if self.eval_limit is not None:
            positive["eval_limit"] = self.eval_limit
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive (got {self.lr})")
        if not math.isfinite(self.lr):
            raise UsageError(f"--lr must be finite (got {self.lr})")
        if self.on_nan not in ("stop", "skip"):
            raise UsageError(f"--on-nan must be stop or skip (got {self.on_nan!r})")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)} (got {self.compile_mode!r})")
        if self.compile_mode != "default" and not self.compile:
            raise UsageError(f"--compile-mode {self.compile_mode} works only with --compile: add --compile, "
                             "or give --compile-mode default")
        if self.fit is not None and self.fit not in FITS:
            raise UsageError(f"--fit must be one of {', '.join(FITS)} (got {self.fit!r})")
        if self.max_data_memory is not None:
            from .data.memory import parse_size

            parse_size(self.max_data_memory)
        if not (isinstance(self.data_fraction, (int, float)) and 0 < self.data_fraction <= 1):
            raise UsageError(f"--data-fraction must be in (0, 1] (got {self.data_fraction})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})



#: A figure's name is the stem of its file in plots/: nothing that could leave the folder.
FIGURE_NAME = r"[A-Za-z0-9_-]{1,64}"
#: Seeds are multiplied by about 1e6 to seed each epoch's order and each rank: keep them where that stays exact.
MAX_SEED = 1 << 32


def check_seed(seed: int) -> None:
    if not 0 <= seed < MAX_SEED:
        raise UsageError(f"--seed must be in 0 .. {MAX_SEED - 1} (got {seed})")


def _choices(name: str) -> tuple:
    return next(f.metadata["choices"] for f in fields(TrainConfig) if f.name == name)


PRECISIONS = _choices("precision")
#: torch.compile's modes (--compile-mode).
COMPILE_MODES = _choices("compile_mode")
#: Modes that capture CUDA graphs, whose outputs the next replay overwrites: the engine marks each step.
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")

#: Keys that define what a run trains; --resume refuses to change them.
IDENTITY_KEYS = ("model", "options", "batch_size", "lr", "lr_schedule", "seed", "data", "data_fraction", "fit",
                 "world_size")
#: Identity keys added after runs were first written: what a config without them trained with.
IDENTITY_DEFAULTS = {"lr_schedule": "constant"}


def _data_difference(saved: dict, asked: dict) -> str | None:
    """How ``--data`` differs from the run's, or None. The same files named two ways are the same
    data: their recorded fingerprints agree, or (runs from before gentk recorded one) both name one
    folder, a relative path read from the current folder. A folder's fingerprint (its file list,
    sizes and times) is recorded, not asked for: the same name with other files is a change."""
    a, b = str(saved.get("data")), str(asked.get("data"))
    fingerprint = saved.get("data_fingerprint")
    if fingerprint and fingerprint == asked.get("data_fingerprint"):
        return None
    same_name = a == b or (a.startswith("folder:") and b.startswith("folder:")
                           and os.path.realpath(a[7:]) == os.path.realpath(b[7:]))
    if not same_name:
        return f"--data (run: {saved.get('data')!r}, now: {asked.get('data')!r})"
    if fingerprint:
        return (f"--data {b} (its files changed since the run was trained: added, removed or modified; "
                "resume with the data as they were)")
    return None


def _shown(value) -> str:
    """A setting's value as a user would type it: None is "none" (the option left out), the rest as repr."""
    return "none" if value is None else repr(value)


def identity_differences(saved: dict, asked: dict) -> list[str]:
    out = []
    for key in IDENTITY_KEYS:
        if key == "options":
            # An option the run's config still lacks (the trainer fills in those the model gained since
            # at their defaults) is one resolved from the data, like channels: the checkpoint's own
            # tensor checks tell whether the networks still fit.
            a, b = saved.get("options", {}), asked.get("options", {})
            out += [f"--{k.replace('_', '-')} (run: {_shown(a.get(k))}, now: {_shown(b.get(k))})"
                    for k in sorted(set(a) | set(b)) if k in a and a.get(k) != b.get(k)]
        elif key == "world_size" and saved.get(key, 1) != asked.get(key, 1):
            out.append(f"the number of processes (run: {saved.get(key, 1)}, now: {asked.get(key, 1)}; "
                       "resume with the same --nproc / torchrun --nproc-per-node x --nnodes)")
        elif key == "data":
            if (difference := _data_difference(saved, asked)) is not None:
                out.append(difference)
        elif key != "world_size":
            was, now = (side.get(key, IDENTITY_DEFAULTS.get(key)) for side in (saved, asked))
            if was != now:
                out.append(f"--{key.replace('_', '-')} (run: {_shown(was)}, now: {_shown(now)})")
    return out


def resolve_device(name: str) -> torch.device:
    """auto = cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"unknown --device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type in ("cpu", "mps") and device.index not in (None, 0):
        raise UsageError(f"--device {name}: there is one {device.type} device; use --device {device.type}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda asked, but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps asked, but MPS is not available; use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"unsupported --device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def cli_settings() -> list:
    """The TrainConfig fields that are `gentk train` options, in declaration order."""
    return [f for f in fields(TrainConfig) if "help" in f.metadata]


#: TrainConfig fields a model's TrainDefaults sets.
MODEL_DEFAULT_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("model_default"))
#: Everything in TrainConfig but the model and its options: where make_config routes a setting.
CONFIG_FIELDS = {f.name for f in fields(TrainConfig)} - {"model", "options"}


class _Null:
    """The type of NULL: a setting explicitly set to None (by a --config file), not left out."""

    def __repr__(self):
        return "NULL"


NULL = _Null()


def make_config(spec, settings: dict, base: dict | None = None) -> TrainConfig:
    """A TrainConfig from the model's defaults (or a resumed run's config), a preset, and settings."""
    from .options import build_options, option_defaults, options_dict

    # None is "not given"; NULL is a None that a --config file set (a run's config.json with
    # "error_clip": null), a value that beats a preset's as the file's other keys do.
    settings = {k: (None if v is NULL else v) for k, v in settings.items() if v is not None}
    preset = settings.pop("preset", None)
    if base is not None:
        values = {k: v for k, v in TrainConfig.from_dict(base).to_dict().items() if k not in ("model", "options")}
        option_values = dict(base.get("options") or {})
    else:
        values = {name: getattr(spec.defaults, name) for name in MODEL_DEFAULT_FIELDS}
        option_values = option_defaults(spec.options)
    if preset is not None:
        if preset not in spec.presets:
            raise UsageError(f"unknown --preset {preset!r} for {spec.name}; "
                             f"available: {', '.join(spec.presets) or 'none'}")
        for key, value in spec.presets[preset].items():
            (values if key in CONFIG_FIELDS else option_values)[key] = value
    for key, value in settings.items():
        (values if key in CONFIG_FIELDS else option_values)[key] = value
    options = options_dict(build_options(spec.options, option_values))
    return TrainConfig(model=spec.name, options=options, **values)


def plugin_differences(saved: list, now: list) -> list[str]:
    """What changed in the set of plugins acting on a run (by name)."""
    before = {p["name"]: p for p in saved or [] if isinstance(p, dict) and "name" in p}
    after = {p["name"]: p for p in now}
    out = [f"plugin {n!r} ({_dist(before[n])}) acted on the run but does not now (not loaded, or no "
           "longer has a hook for this model)" for n in sorted(set(before) - set(after))]
    out += [f"plugin {n!r} ({_dist(after[n])}) has hooks that would act on this run's model but did not "
            "when it was trained (uninstall it, or have it declare GENTK_MODELS without this model)"
            for n in sorted(set(after) - set(before))]
    return out


def _dist(record: dict) -> str:
    if not record.get("distribution"):
        return "registered in-process"
    return f"{record['distribution']} {record.get('version') or ''}".strip()


def config_schema():
    """The schema of a run's config.json, from TrainConfig's own fields and types."""
    import typing

    from . import schema as s

    def of(hint):
        if hint is bool:
            return s.Bool()
        if hint is int:
            return s.Int(min=-(1 << 63), max=(1 << 63) - 1)
        if hint is float:
            return s.Num(finite=False)  # ranges (and finiteness) are TrainConfig.validate's
        if hint is str:
            return s.Str()
        if hint is list:
            return s.List(s.Str(max_len=200), max_len=100)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if args and len(args) < len(typing.get_args(hint)):
            return s.Optional(of(args[0]))
        return s.AnyJSON()

    hints = typing.get_type_hints(TrainConfig)
    optional = {f.name: of(hints[f.name]) for f in fields(TrainConfig) if f.name not in ("model", "options", "plugins")}
    optional["data_fingerprint"] = s.Optional(s.Str(max_len=64))
    optional["class_names"] = s.Optional(s.List(s.Str(max_len=1000), max_len=1 << 20))
    optional["world_size"] = s.Int(min=1, max=1 << 20)
    optional["plugins"] = s.List(s.Obj(required={"name": s.Str()},
                                       optional={"distribution": s.Optional(s.Str()), "version": s.Optional(s.Str())}),
                                 max_len=1000)
    optional["display"] = s.Obj(optional={"phases": s.List(s.Str()), "progress": s.List(s.Str()),
                                          "figures": s.Map(s.List(s.List(s.Str())), keys=FIGURE_NAME)})
    return s.Obj(required={"model": s.Str(max_len=200), "options": s.Map(s.Scalar(), max_len=1000)},
                 optional=optional)


def checked_config(data, path, error) -> dict:
    """A run's config.json, parsed: refused in one line (naming the field) unless it fits the
    schema and TrainConfig.validate()'s ranges."""
    from .schema import validate

    validate(data, config_schema(), path, error)
    try:
        TrainConfig.from_dict(data).validate()
    except UsageError as exc:
        raise error(f"{path}: {exc}") from None
    return data
