"""``--max-data-memory SIZE``: how much decoded data may live on the device."""

from __future__ import annotations

import os
import re

import torch

from ..errors import UsageError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
#: The share of the device's memory a dataset may take by default: the networks, their
#: activations and (on the CPU) everything else need the rest.
DEFAULT_SHARE = 0.25


def parse_size(text: str) -> int:
    """``512MB``, ``4GB``, ``1.5G``, ``100000`` (bytes) -> bytes; units are binary (1 MB = 2^20 bytes)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise UsageError(f"--max-data-memory {text!r} is not a size; write e.g. 512MB, 4GB or 0 (always from disk)")
    return int(float(match.group(1)) * _UNITS[unit])


def device_memory(device: torch.device) -> int:
    """Bytes of memory of the device the data would be copied to (RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30  # unknown (not POSIX): a laptop's


def max_data_memory(setting: str | None, device: torch.device) -> int:
    """The limit in bytes: the setting, or DEFAULT_SHARE of the device's memory."""
    if setting is None:
        return int(device_memory(device) * DEFAULT_SHARE)
    return parse_size(setting)


def human(nbytes: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} B"
