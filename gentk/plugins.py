"""The plugin manager: entry points of group "gentk", load errors kept, hooks blamed by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import GentkError, PluginError, UnknownModelError
from .model import ModelSpec

ENTRY_POINT_GROUP = "gentk"


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None


@dataclass
class Registry:
    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    _models: dict[str, tuple[ModelSpec, str]] | None = None

    # -- models ---------------------------------------------------------------
    def models(self) -> dict[str, tuple[ModelSpec, str]]:
        """Model name -> (spec, plugin name). A plugin whose hook raises is recorded as broken."""
        if self._models is None:
            self._models = {}
            # Call each implementation on its own, oldest first, so one broken
            # plugin costs only its own models and a later plugin overrides an earlier one.
            for impl in self.pm.hook.register_models.get_hookimpls():
                found: list[ModelSpec] = []
                try:
                    impl.function(register=found.append)
                except Exception as exc:  # noqa: BLE001 - any plugin bug is reported, not fatal
                    self._record_error(impl.plugin_name, f"register_models failed: {exc!r}")
                    continue
                for spec in found:
                    self._models[spec.name] = (spec, impl.plugin_name)
        return self._models

    def spec(self, name: str) -> ModelSpec:
        models = self.models()
        if name not in models:
            known = ", ".join(sorted(models)) or "none (see `gentk plugins`)"
            raise UnknownModelError(f"unknown model {name!r}; available: {known}")
        return models[name][0]

    def _record_error(self, plugin: str, message: str) -> None:
        info = self.plugins.setdefault(plugin, PluginInfo(plugin))
        info.error = message

    # -- hooks ----------------------------------------------------------------
    def call(self, hook: str, **kwargs):
        """Call a hook; an exception from a plugin names the plugin and the hook."""
        caller = getattr(self.pm.hook, hook)
        try:
            return caller(**kwargs)
        except GentkError:
            raise
        except Exception as exc:
            plugin = blame(caller, exc)
            raise PluginError(f"plugin {plugin!r} failed in hook {hook}: "
                              f"{type(exc).__name__}: {exc}") from exc

    def hooks_of(self, plugin_name: str) -> list[str]:
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])


def blame(caller, exc: BaseException) -> str:
    """The name of the plugin whose hook implementation raised ``exc``."""
    codes = {impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()}
    tb = exc.__traceback__
    culprit = "unknown"
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code)
        if name is not None:
            culprit = name
        tb = tb.tb_next
    return culprit


def _allowed() -> set[str] | None:
    raw = os.environ.get("GENTK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def load_registry() -> Registry:
    pm = pluggy.PluginManager("gentk")
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm)
    allowed = _allowed()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
        registry.plugins[ep.name] = info
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the CLI
            info.error = f"{type(exc).__name__}: {exc}"
    return registry


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def reset_registry() -> None:
    """Forget the loaded registry (tests, or after installing a plugin)."""
    global _registry
    _registry = None


def register_plugin(obj, name: str) -> None:
    """Register an in-process plugin object (tests, notebooks)."""
    registry = get_registry()
    registry.pm.register(obj, name=name)
    registry.plugins[name] = PluginInfo(name)
    registry._models = None


def unregister_plugin(name: str) -> None:
    registry = get_registry()
    plugin = registry.pm.get_plugin(name)
    if plugin is not None:
        registry.pm.unregister(plugin)
    registry.plugins.pop(name, None)
    registry._models = None


