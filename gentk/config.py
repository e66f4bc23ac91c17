"""The training configuration a run is built from and resumed against."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from .errors import UsageError


@dataclass
class TrainConfig:
    model: str
    options: dict = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-4
    data_fraction: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    data: str = "mnist"
    data_root: str | None = None
    device: str = "auto"
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_limit: int | None = None
    on_nan: str = "stop"
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"
    sync_bn: bool = False
    #: Processes training together (set from torchrun's WORLD_SIZE, not an option):
    #: each takes --batch-size images, so it is part of what a run trains.
    world_size: int = 1

    def validate(self) -> None:
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
        if self.on_nan not in ("stop", "skip"):
            raise UsageError(f"--on-nan must be stop or skip (got {self.on_nan!r})")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)} (got {self.compile_mode!r})")
        if self.compile_mode != "default" and not self.compile:
            raise UsageError(f"--compile-mode {self.compile_mode} works only with --compile: add --compile, "
                             "or give --compile-mode default")
        if not 0 < self.data_fraction <= 1:
            raise UsageError(f"--data-fraction must be in (0, 1] (got {self.data_fraction})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


PRECISIONS = ("fp32", "bf16", "fp16")
#: torch.compile's modes (--compile-mode).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Modes that capture CUDA graphs, whose outputs the next replay overwrites: the engine marks each step.
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")

#: Keys that define what a run trains; --resume refuses to change them.
IDENTITY_KEYS = ("model", "options", "batch_size", "lr", "seed", "data", "data_fraction", "world_size")


def identity_differences(saved: dict, asked: dict) -> list[str]:
    out = []
    for key in IDENTITY_KEYS:
        if key == "options":
            a, b = saved.get("options", {}), asked.get("options", {})
            out += [f"--{k.replace('_', '-')} (run: {a.get(k)!r}, now: {b.get(k)!r})"
                    for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif key == "world_size" and saved.get(key, 1) != asked.get(key, 1):
            out.append(f"the number of processes (run: {saved.get(key, 1)}, now: {asked.get(key, 1)}; "
                       "resume with the same --nproc / torchrun --nproc-per-node x --nnodes)")
        elif key != "world_size" and saved.get(key) != asked.get(key):
            out.append(f"--{key.replace('_', '-')} (run: {saved.get(key)!r}, now: {asked.get(key)!r})")
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
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown --device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
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
