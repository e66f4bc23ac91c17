"""One description of the machine a benchmark ran on, for every results row.

The CPU model is part of it because the same seed does not give the same bits
on another CPU: a second `quality.py vae --epochs 5` on another machine of this
project's kind moved its FID by 2.7 (docs/results.md), so rows are compared
knowing where they ran.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: torch.device | None = None) -> str:
    """'x86_64, AMD EPYC, 2 threads[, GPU name]': the GPU is named when `device` is CUDA
    (or, with no device given, when one is available)."""
    text = f"{platform.machine()}, {cpu_model()}, {torch.get_num_threads()} threads"
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    return text + (f", {torch.cuda.get_device_name(device)}" if cuda else "")
