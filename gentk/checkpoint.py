"""Checkpoints: safetensors for every tensor, a JSON sidecar for the rest, written atomically.

A checkpoint ``step-00000020`` is two files in ``checkpoints/``:
``step-00000020.safetensors`` (weights, optimizer state, RNG states) and
``step-00000020.json`` (step, data position, plugin state, the sha256 and size
of the safetensors file). The sidecar is written last, so a checkpoint without
one was interrupted and is ignored. ``latest`` names the newest.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError
from .fsutil import atomic_write_bytes, atomic_write_text
from .safeio import read_bytes, read_text
from .schema import SIDECAR, parse_json, validate

FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})$")
MAX_SIDECAR_BYTES = 16 << 20


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


@dataclass
class Checkpoint:
    name: str
    tensors: dict[str, torch.Tensor]
    meta: dict


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict from a checkpoint's tensors (saved under ``model/``)."""
    return {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}


# -- optimizers -------------------------------------------------------------

def optimizer_to_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, per_param in sd["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/{idx}/{key}"] = value
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    head = prefix + "/"
    for name, value in tensors.items():
        if name.startswith(head):
            idx, key = name[len(head):].split("/", 1)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- RNG --------------------------------------------------------------------

def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng/cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng/cuda/{i}"] = s
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng/cpu"])
    cuda = sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


# -- files ------------------------------------------------------------------

def save_checkpoint(folder: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict,
                    keep: int = 3) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune to ``keep``."""
    name = checkpoint_name(step)
    payload = st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    sidecar = dict(meta, format=FORMAT_VERSION, step=step,
                   sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    try:  # before any file is written: never a .safetensors without its sidecar
        text = json.dumps(sidecar, indent=1, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {name} not written: its state is not JSON ({exc}); "
                              "a plugin put something else than numbers, strings, lists or dicts in state.extra") from None
    atomic_write_bytes(folder / f"{name}.safetensors", payload)
    atomic_write_text(folder / f"{name}.json", text)
    atomic_write_text(folder / "latest", name + "\n")
    prune(folder, keep, written=name)
    return folder / f"{name}.safetensors"


def list_checkpoints(folder: Path) -> list[str]:
    """Names of checkpoints with a sidecar, newest first."""
    if not folder.is_dir():
        return []
    names = [p.stem for p in folder.glob("step-*.json") if _NAME.match(p.stem)]
    return sorted(names, key=lambda n: int(_NAME.match(n).group(1)), reverse=True)


def prune(folder: Path, keep: int, written: str | None = None) -> None:
    """Delete all but the ``keep`` newest checkpoints whose sidecar is valid. A sidecar that is
    not (junk, however high its number) is never counted, so it cannot push out good ones, and
    never deleted: it is the user's to look at. ``written`` (just saved) is always kept."""
    valid = []
    for name in list_checkpoints(folder):
        try:
            read_sidecar(folder / f"{name}.json")
        except CheckpointError:
            continue
        valid.append(name)
    for name in valid[max(keep, 1):]:
        if name == written:
            continue
        for suffix in (".json", ".safetensors"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)


def read_checkpoint(folder: Path, name: str) -> Checkpoint:
    """Load and verify one checkpoint (sidecar fits its schema, size and sha256 match, header sane)."""
    if not _NAME.match(name):
        raise CheckpointError(f"{name!r} is not a checkpoint name (expected step-NNNNNNNN)")
    weights, sidecar = folder / f"{name}.safetensors", folder / f"{name}.json"
    meta = read_sidecar(sidecar)
    if meta["step"] != int(_NAME.match(name).group(1)):
        raise CheckpointError(f"{sidecar} says step {meta['step']}, but its name says {name}")
    # Never more than the sidecar's size: a link to /dev/zero or a grown file is refused, not read.
    payload = read_bytes(weights, meta["size"], CheckpointError, "checkpoint")
    if len(payload) != meta["size"]:
        raise CheckpointError(f"{weights} is truncated ({len(payload)} bytes, expected {meta['size']})")
    if hashlib.sha256(payload).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{weights} does not match the checksum in its sidecar (corrupt)")
    return Checkpoint(name, load_safetensors_bytes(payload, weights), meta)


def load_safetensors_bytes(payload: bytes, path) -> dict[str, torch.Tensor]:
    try:
        return st_load(payload)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file: {exc}") from exc


def read_sidecar(path: Path) -> dict:
    text = read_text(path, MAX_SIDECAR_BYTES, CheckpointError, "checkpoint sidecar")
    meta = parse_json(text, path, CheckpointError, "checkpoint sidecar")
    if isinstance(meta, dict) and "format" in meta and meta["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {meta['format']!r}; "
                              f"this gentk reads format {FORMAT_VERSION}")
    validate(meta, SIDECAR, path, CheckpointError)
    return meta


def latest_intact(folder: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint that verifies, and a note for each newer one that did not."""
    notes = []
    for name in list_checkpoints(folder):
        try:
            return read_checkpoint(folder, name), notes
        except CheckpointError as exc:
            notes.append(f"skipped damaged checkpoint: {exc}")
    return None, notes


# -- what a checkpoint may load into ------------------------------------------------------

def check_model_tensors(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Every tensor the model has, of its shape and dtype, and nothing else: checked before
    ``load_state_dict`` so that a tampered file is one line, never a crash."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which the model does not"
        raise CheckpointError(f"checkpoint {name} does not fit this model: it {what}")
    for key, want in expected.items():
        got = state[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(f"checkpoint {name} does not fit this model: {key} is {got.dtype} "
                                  f"{tuple(got.shape)}, the model's is {want.dtype} {tuple(want.shape)}")


def check_optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: dict,
                            name: str) -> None:
    """The optimizer state in a checkpoint fits ``optimizer``: the same parameter groups, and per
    parameter only tensors of the parameter's shape (or 0-d counters). The fused kernels trust
    these shapes, so a wrong one would be a crash, not an error."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = meta["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(f"checkpoint {name}: {prefix} has other parameter groups than this model's optimizer")
    for saved, live in zip(groups, optimizer.param_groups):
        betas = saved.get("betas")
        if isinstance(betas, (list, tuple)) and any(isinstance(b, (int, float)) and b >= 1 for b in betas):
            raise CheckpointError(f"checkpoint {name}: {prefix} setting 'betas' is {betas}; Adam's betas lie in [0, 1)")
        for key, want in live.items():
            if key != "params" and not _same_kind(saved.get(key, _MISSING), want):
                raise CheckpointError(f"checkpoint {name}: {prefix} setting {key!r} is {saved.get(key, 'missing')!r}, "
                                      f"not like this optimizer's {want!r}")
        unknown = sorted(set(saved) - set(live))
        if unknown:
            raise CheckpointError(f"checkpoint {name}: {prefix} has setting {unknown[0]!r}, which this optimizer lacks")
    head = prefix + "/"
    for key, value in tensors.items():
        if not key.startswith(head):
            continue
        index, _, field = key[len(head):].partition("/")
        if not (index.isascii() and index.isdigit()) or int(index) >= len(params) or not field:
            raise CheckpointError(f"checkpoint {name}: {key} names no parameter of the optimizer")
        param = params[int(index)]
        if value.dim() and (value.shape != param.shape or not value.dtype.is_floating_point):
            raise CheckpointError(f"checkpoint {name}: {key} is {value.dtype} {tuple(value.shape)}, "
                                  f"its parameter is {tuple(param.shape)}")
        if not value.dim() and value.dtype.is_complex:
            raise CheckpointError(f"checkpoint {name}: {key} is a complex number")
    for key, value in meta["scalars"].items():
        index, _, field = key.partition("/")
        if not (index.isascii() and index.isdigit()) or int(index) >= len(params) or isinstance(value, (dict, list, str)):
            raise CheckpointError(f"checkpoint {name}: optimizer value {key!r} does not fit the optimizer")


_MISSING = object()


def _same_kind(saved, live) -> bool:
    """A saved optimizer setting the live optimizer can take: the same switches (amsgrad, fused,
    maximize, ...: the kernels and their state depend on them) and finite, non-negative numbers."""
    if saved is _MISSING:
        return False
    if live is None or isinstance(live, (bool, str)):
        return type(saved) is type(live) and saved == live
    if isinstance(live, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool) and math.isfinite(saved) and saved >= 0
    if isinstance(live, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(live) and all(
            _same_kind(a, b) for a, b in zip(saved, live))
    if torch.is_tensor(live):  # a tensor lr (capturable optimizers) is saved as a number
        return isinstance(saved, (int, float)) and not isinstance(saved, bool) and math.isfinite(saved)
    return False


def check_rng(tensors: dict, name: str) -> None:
    """RNG states are byte tensors of the size torch saves; anything else is refused before
    ``set_rng_state`` sees it."""
    sizes = {"rng/cpu": torch.get_rng_state().numel()}
    for key, value in tensors.items():
        if not key.startswith("rng/"):
            continue
        if key != "rng/cpu" and not re.fullmatch(r"rng/cuda/[0-9]{1,4}", key):
            raise CheckpointError(f"checkpoint {name}: {key} is not an RNG state gentk saves")
        want = sizes.get(key) if key == "rng/cpu" else None
        if value.dtype != torch.uint8 or value.dim() != 1 or (want is not None and value.numel() != want):
            raise CheckpointError(f"checkpoint {name}: {key} is not an RNG state ({value.dtype} {tuple(value.shape)})")
    if "rng/cpu" not in tensors:
        raise CheckpointError(f"checkpoint {name} has no CPU RNG state (rng/cpu)")
