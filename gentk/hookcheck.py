"""What a hook may return, checked where it comes back, so a plugin's mistake is one line naming it."""

from __future__ import annotations

import json
import math
import numbers

import torch

from .errors import PluginError


def _scalar_problem(value) -> str | None:
    """Why ``value`` cannot be a logged metric (None when it can)."""
    if torch.is_tensor(value):
        if value.numel() != 1:
            return f"a tensor of shape {tuple(value.shape)} (metrics are scalars: reduce it, e.g. .mean())"
        if value.dtype.is_complex:
            return f"a {value.dtype} tensor (metrics are real numbers)"
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"a {type(value).__name__} (metrics are numbers or one-element tensors)"
    return None


def check_metrics(metrics, who: str, hook: str) -> dict:
    if not isinstance(metrics, dict):
        raise PluginError(f"{who}, hook {hook}: returned a {type(metrics).__name__}, not a dict of metrics")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise PluginError(f"{who}, hook {hook}: metric name {key!r} is not a string")
        problem = _scalar_problem(value)
        if problem:
            raise PluginError(f"{who}, hook {hook}: metric {key!r} is {problem}")
    return metrics


def check_loss(out, who: str) -> None:
    if not isinstance(out, dict):
        raise PluginError(f"{who}, hook compute_loss: returned a {type(out).__name__}; "
                          "return a dict with 'loss', e.g. {'loss': loss}")
    if "loss" not in out:
        raise PluginError(f"{who}, hook compute_loss: the dict has no 'loss' (keys: {', '.join(map(str, out))})")
    loss = out["loss"]
    if not (torch.is_tensor(loss) and loss.numel() == 1 and loss.dtype.is_floating_point):
        what = f"a {loss.dtype} tensor of shape {tuple(loss.shape)}" if torch.is_tensor(loss) else type(loss).__name__
        raise PluginError(f"{who}, hook compute_loss: 'loss' is {what}; it must be a one-element "
                          "floating-point tensor to back-propagate")
    check_metrics(out, who, "compute_loss")


def check_beta(beta, who: str) -> float:
    if torch.is_tensor(beta) and beta.numel() == 1 and not beta.dtype.is_complex:
        beta = beta.item()
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta):
        raise PluginError(f"{who}, hook adjust_beta: returned {beta!r}; return a finite number, "
                          "or None to keep the current beta")
    return float(beta)


def check_extra(extra: dict, who: str, hook: str) -> None:
    """state.extra is saved as JSON in every checkpoint: refuse what JSON cannot hold."""
    for key, value in extra.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise PluginError(f"{who}, hook {hook}: state.extra[{key!r}] is not JSON ({exc}); keep numbers, "
                              "strings, lists and dicts there (tensors: call .tolist())") from None
        if not isinstance(key, str):
            raise PluginError(f"{who}, hook {hook}: state.extra key {key!r} is not a string")
