"""The FID Inception compiled ahead of time for this CPU by torch's AOTInductor, built once and cached.

The traced graph (inception.py) runs at about 24 images/s on this project's idle 2-core CPU;
the AOTInductor package of the same network at 30-33 (slower than the traced graph when other
processes keep a core busy: its threads wait on each other), and loads in about 0.3 s, where
torch.compile recompiles for 25-50 s in every process (its graph cache does not keep frozen
graphs). Building the package takes 8-47 s and a C++ compiler, so it happens once per
machine, torch version, weights, feature size and batch size, under GENTK_HOME/compiled.

The package holds a shared library: it is only ever loaded from that cache, never from a
path given on the command line, and only when its sha256 matches the one recorded beside it
when gentk built it (a truncated or swapped file is built again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from ..data.cache import gentk_home
from ..data.registry_fallback import sha256_file
from ..fsutil import atomic_write_text

#: Images per compiled call: the package has one static shape; a short last batch is padded.
COMPILED_BATCH = 8
#: Largest difference from the eager network, on a random batch, accepted from a build (the
#: compiled and eager features of real images part by about 3e-5; features are O(0.1-1)).
MAX_BUILD_DIFFERENCE = 1e-3


@contextmanager
def _quiet():
    """torch's C++-extension helper logs 'No CUDA runtime is found' on CPU-only machines: not news here."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def enabled_by_default() -> bool:
    """GENTK_FID_COMPILE=0 (or false, no, off) turns the compiled network off unless --compile asks for it."""
    return os.environ.get("GENTK_FID_COMPILE", "1").strip().lower() not in ("0", "", "false", "no", "off")


def _cpu_key() -> str:
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # the generated code uses the instruction sets of the CPU that built it
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "flags")):
                flags += line
            if line.startswith("flags"):
                break
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()} {flags}"


def _key(weights_sha256: str, dims: int, batch: int) -> str:
    text = json.dumps([torch.__version__, _cpu_key(), weights_sha256, dims, batch])
    return hashlib.sha256(text.encode()).hexdigest()


def package(weights_sha256: str, dims: int, batch: int = COMPILED_BATCH) -> tuple[Path, str]:
    """Where the package for these settings lives, and the key its record must carry."""
    return package_path(weights_sha256, dims, batch), _key(weights_sha256, dims, batch)


def package_path(weights_sha256: str, dims: int, batch: int = COMPILED_BATCH) -> Path:
    return gentk_home() / "compiled" / f"inception-d{dims}-b{batch}-{_key(weights_sha256, dims, batch)[:16]}.pt2"


def _recorded(path: Path) -> dict | None:
    try:
        record = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def load(path: Path, key: str):
    """The cached package's runner, or None when there is none, it is not the file gentk built
    (sha256), or it was built for other settings (``key``: torch, CPU, weights, dims, batch)."""
    record = _recorded(path)
    if record is None or not path.is_file() or record.get("key") != key or record.get("sha256") != sha256_file(path):
        return None
    with _quiet():
        return torch._inductor.aoti_load_package(str(path))


def build(model: torch.nn.Module, path: Path, key: str) -> dict:
    """Export ``model`` (built with resize_input=False: it takes 299x299 images, so one package
    serves every image size) at a batch of COMPILED_BATCH, compile it, check it against the
    eager network, and put it in place with its record (atomically: a failed build leaves nothing)."""
    started = time.perf_counter()
    example = torch.rand(COMPILED_BATCH, 3, 299, 299).contiguous(memory_format=torch.channels_last)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,))
        expected = model(example)[0]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".building-", suffix=".pt2")
    os.close(fd)
    with _quiet():
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=tmp)
            runner = torch._inductor.aoti_load_package(tmp)
            with torch.inference_mode():
                difference = float((runner(example)[0] - expected).abs().max())
            if not difference <= MAX_BUILD_DIFFERENCE:
                raise RuntimeError(f"the compiled network differs from the eager one by {difference:.2e}")
            record = {"key": key, "sha256": sha256_file(Path(tmp)), "torch": torch.__version__, "batch": COMPILED_BATCH,
                      "max_abs_difference_from_eager": difference, "build_s": round(time.perf_counter() - started, 1)}
            atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return record


class CompiledInception:
    """Calls like the eager network on (N <= COMPILED_BATCH, 3, H, W) in [0, 1]: resizes to 299x299
    eagerly, as pytorch-fid's network does first, and pads a short batch to the package's shape."""

    def __init__(self, runner):
        self.runner = runner

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[2:] != (299, 299):
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        n = x.shape[0]
        if n < COMPILED_BATCH:
            x = torch.cat([x, x.new_zeros(COMPILED_BATCH - n, *x.shape[1:])])
        return [out[:n] for out in self.runner(x.contiguous(memory_format=torch.channels_last))]
