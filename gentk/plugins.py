"""The plugin manager: plugins loaded in a fixed order, load errors kept, hooks called and checked.

Load order (documented in docs/plugins.md, never ``sys.path`` order): gentk's
core plugin, then the entry points of group "gentk" of the ``gentk``
distribution (the built-in models), then every other distribution's, sorted
by distribution name and entry-point name, then plugins registered in-process.
pluggy asks the most recently registered plugin first, so among plugins of
the same kind a later one answers before an earlier one; ``tryfirst`` and
``trylast`` come before that order.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from . import core_plugin, hookspecs
from .errors import GentkError, PluginError, UnknownModelError, UsageError
from .hookcheck import check_beta, check_extra, check_loss, check_metrics
from .model import FITS, VALUE_RANGES, GenerativeModel, ModelSpec

ENTRY_POINT_GROUP = "gentk"
BUILTIN_DISTRIBUTION = "gentk"


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None

    def record(self) -> dict:
        return {"name": self.name, "distribution": self.distribution, "version": self.version}


@dataclass
class Registry:
    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    _models: dict[str, tuple[ModelSpec, str]] | None = None
    _datasets: dict | None = None
    _loggers: dict | None = None
    #: (hook, name) -> the plugin whose entry a later-loaded plugin replaced.
    replaced: dict = field(default_factory=dict)

    # -- models and datasets --------------------------------------------------------
    def models(self) -> dict[str, tuple[ModelSpec, str]]:
        """Model name -> (spec, plugin name). A plugin whose hook raises is recorded as broken."""
        if self._models is None:
            self._models = self._collect("register_models", ModelSpec)
        return self._models

    def datasets(self) -> dict:
        """Dataset name -> (DatasetSpec, plugin name)."""
        from .data.spec import DatasetSpec

        if self._datasets is None:
            self._datasets = self._collect("register_datasets", DatasetSpec)
        return self._datasets

    def loggers(self) -> dict:
        """Logger name -> (LoggerSpec, plugin name)."""
        from .loggers import LoggerSpec

        if self._loggers is None:
            self._loggers = self._collect("register_loggers", LoggerSpec)
        return self._loggers

    def logger(self, name: str):
        loggers = self.loggers()
        if name not in loggers:
            raise UsageError(self._unknown("--logger", name, loggers))
        return loggers[name]

    def _collect(self, hook: str, kind: type) -> dict:
        found_all: dict = {}
        # Each implementation on its own, oldest first, so one broken plugin costs only
        # its own entries and a later plugin overrides an earlier one.
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            found: list = []
            try:
                impl.function(register=found.append)
            except Exception as exc:  # noqa: BLE001 - any plugin bug is reported, not fatal
                self._record_error(impl.plugin_name, f"{hook} failed: {type(exc).__name__}: {exc}")
                continue
            for item in found:
                if not isinstance(item, kind):
                    self._record_error(impl.plugin_name, f"{hook} registered a {type(item).__name__}, "
                                                         f"not a gentk.{kind.__name__}")
                    continue
                if item.name in found_all and found_all[item.name][1] != impl.plugin_name:
                    self.replaced[(hook, item.name)] = found_all[item.name][1]
                found_all[item.name] = (item, impl.plugin_name)
        return found_all

    def spec(self, name: str) -> ModelSpec:
        models = self.models()
        if name not in models:
            raise UnknownModelError(self._unknown("model", name, models))
        return models[name][0]

    def model_plugin(self, name: str) -> str:
        return self.models()[name][1]

    def dataset(self, name: str):
        datasets = self.datasets()
        if name not in datasets:
            raise UsageError(self._unknown("--data", name, {s.usage: None for s, _ in datasets.values()}))
        return datasets[name]

    def _unknown(self, what: str, name: str, known: dict, extra=()) -> str:
        # Plugins are usually named after what they provide: the likely culprit speaks first.
        info = self.plugins.get(name)
        if info is not None and info.error:
            return f"{what.strip('-')} {name!r}'s plugin {info.distribution or name} failed to load: {info.error}"
        names = ", ".join([*sorted(known), *extra]) or "none (see `gentk plugins`)"
        broken = sorted(p for p, i in self.plugins.items() if i.error)
        hint = f" (plugin(s) {', '.join(broken)} failed to load: see `gentk plugins`)" if broken else ""
        return f"unknown {what} {name!r}; available: {names}{hint}"

    def _record_error(self, plugin: str, message: str) -> None:
        info = self.plugins.setdefault(plugin, PluginInfo(plugin))
        info.error = f"{info.error}; {message}" if info.error else message

    # -- building a model -----------------------------------------------------------
    def build_model(self, spec: ModelSpec, options: dict) -> GenerativeModel:
        """The model for ``spec`` from an options dict (CLI values or a run's config.json)."""
        from .options import build_options

        opts = build_options(spec.options, options)
        model, impl = self._call_checked("build_model", dict(name=spec.name, options=opts, spec=spec),
                                         firstresult=True, model_name=spec.name)
        who = self.who(impl, spec.name) if impl else f"plugin {self.model_plugin(spec.name)!r}"
        if model is None:
            raise PluginError(f"no plugin built model {spec.name!r}: its ModelSpec names no model class "
                              "and no build_model hook answered")
        if not isinstance(model, GenerativeModel):
            raise PluginError(f"{who}, hook build_model: returned {type(model).__name__}, not a gentk.GenerativeModel")
        if model.value_range not in VALUE_RANGES:
            raise PluginError(f"{who}: model {spec.name!r} has value_range {model.value_range!r}; "
                              f"use one of {', '.join(VALUE_RANGES)}")
        if model.fit not in FITS:
            raise PluginError(f"{who}: model {spec.name!r} has fit {model.fit!r}; use one of {', '.join(FITS)}")
        from .config import FIGURE_NAME

        bad = [n for n in model.figures if not (isinstance(n, str) and re.fullmatch(FIGURE_NAME, n))]
        if bad:
            raise PluginError(f"{who}: model {spec.name!r} declares figure {bad[0]!r}; figure names are "
                              f"file names of the form {FIGURE_NAME}")
        if model.conditional and not (isinstance(model.num_classes, int) and model.num_classes >= 1):
            raise PluginError(f"{who}: conditional model {spec.name!r} must set num_classes to a positive int "
                              f"(got {model.num_classes!r})")
        model.model_name = spec.name  # the core plugin's answers are blamed on this model's plugin
        return model

    # -- calling hooks ----------------------------------------------------------------
    def call(self, hook: str, **kwargs):
        """Call a hook through pluggy; an exception from a plugin names the plugin and the hook."""
        caller = getattr(self.pm.hook, hook)
        try:
            return caller(**kwargs)
        except GentkError:
            raise
        except Exception as exc:
            plugin = blame(caller, exc)
            raise PluginError(f"plugin {plugin!r} failed in hook {hook}: "
                              f"{type(exc).__name__}: {exc}") from exc

    def model_hook(self, hook: str, model: GenerativeModel, **kwargs):
        """Call a model hook with ``model`` and check what comes back; returns the (first) answer,
        or for ``on_epoch_end`` the merged dicts. Errors name the distribution and the hook."""
        kwargs["model"] = model
        name = getattr(model, "model_name", None)
        firstresult = hook in ("compute_loss", "adjust_beta")
        answer, impl = self._call_checked(hook, kwargs, firstresult, name)
        if hook == "on_epoch_end":
            merged = {}
            for result, one in answer:
                if result is not None:
                    merged.update(check_metrics(result, self.who(one, name), hook))
            return merged
        if impl is None:
            return None
        who = self.who(impl, name)
        if hook == "compute_loss":
            check_loss(answer, who)
        elif hook == "adjust_beta":
            answer = check_beta(answer, who)
        return answer

    def _call_checked(self, hook: str, kwargs: dict, firstresult: bool, model_name: str | None):
        """Call each implementation in pluggy's order; returns (answer, impl) when
        ``firstresult``, else ([(result, impl), ...], None)."""
        state = kwargs.get("state")
        results = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            if not self.acts_on(impl.plugin_name, model_name):
                continue
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                raise PluginError(f"plugin {impl.plugin_name!r}: hook {hook} cannot be a wrapper")
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except GentkError:
                raise
            except Exception as exc:
                raise PluginError(f"{self.who(impl, model_name)} failed in hook {hook}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if hook == "on_step":
                check_metrics(kwargs["metrics"], self.who(impl, model_name), hook)
            if state is not None and state.extra:
                check_extra(state.extra, self.who(impl, model_name), hook)
            if firstresult and result is not None:
                return result, impl
            results.append((result, impl))
        return (None, None) if firstresult else (results, None)

    def who(self, impl, model_name: str | None) -> str:
        """The culprit of a hook's answer: a plugin and its distribution; the model's own
        plugin (and class method) when the answer came from gentk's core default."""
        if impl is None:
            return "gentk"
        plugin = impl.plugin_name
        if plugin == core_plugin.NAME and model_name is not None and model_name in self.models():
            return f"{self.describe(self.model_plugin(model_name))} (model {model_name!r}'s methods)"
        return self.describe(plugin)

    def describe(self, plugin: str) -> str:
        """``plugin 'NAME', distribution DIST``: how errors name a plugin."""
        info = self.plugins.get(plugin)
        dist = f", distribution {info.distribution}" if info and info.distribution else ""
        return f"plugin {plugin!r}{dist}"

    @contextmanager
    def model_code(self, model_name: str | None, what: str):
        """Around a model's own methods that gentk calls directly (phases, noise, sample, grids):
        an exception from them is one line naming the model's plugin."""
        try:
            yield
        except GentkError:
            raise
        except Exception as exc:
            plugin = self.models()[model_name][1] if model_name in self.models() else "unknown"
            hint = ""
            if isinstance(exc, TypeError) and "labels" in str(exc):
                hint = "; a model whose sample takes labels must set conditional = True and num_classes"
            raise PluginError(f"{self.describe(plugin)}: model {model_name!r} failed in {what}: "
                              f"{type(exc).__name__}: {exc}{hint}") from exc

    # -- what acts on a model ---------------------------------------------------------
    def acts_on(self, plugin_name: str, model_name: str | None) -> bool:
        """Whether a plugin's model hooks are called for ``model_name``: always, unless the plugin
        declares ``GENTK_MODELS`` (the model names it changes) without it."""
        scope = getattr(self.pm.get_plugin(plugin_name), "GENTK_MODELS", None)
        return scope is None or model_name is None or model_name in scope

    def acting_plugins(self, model_name: str) -> list[dict]:
        """The plugins whose code runs on ``model_name``'s runs: its own plugin, and every other
        plugin with a model hook that acts on it (see :meth:`acts_on`). Recorded in config.json."""
        names = {self.model_plugin(model_name)}
        for hook in hookspecs.MODEL_HOOKS:
            names |= {impl.plugin_name for impl in getattr(self.pm.hook, hook).get_hookimpls()
                      if self.acts_on(impl.plugin_name, model_name)}
        names.discard(core_plugin.NAME)
        return [self.plugins.get(n, PluginInfo(n)).record() for n in sorted(names)]

    def precedence(self, model_name: str) -> dict[str, list[str]]:
        """Per model hook, the plugins in the order they are asked (``tryfirst`` first, the
        model's own methods last)."""
        own = self.model_plugin(model_name)
        out = {}
        for hook in hookspecs.MODEL_HOOKS:
            order = []
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                if not self.acts_on(impl.plugin_name, model_name):
                    continue
                if impl.plugin_name == core_plugin.NAME:
                    order.append(f"{own} (model class)" if hook != "build_model" else f"{own} (ModelSpec.model)")
                else:
                    order.append(impl.plugin_name + (" (tryfirst)" if impl.tryfirst else ""))
            out[hook] = order
        return out

    def hooks_of(self, plugin_name: str) -> list[str]:
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    # -- commands ----------------------------------------------------------------------
    def add_commands(self, group, reserved: set[str]) -> None:
        """Let plugins add subcommands to ``group``; a name in ``reserved`` (gentk's own) is refused."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            before = set(group.commands)
            try:
                impl.function(cli=group)
            except Exception as exc:  # noqa: BLE001
                self._record_error(impl.plugin_name, f"register_commands failed: {type(exc).__name__}: {exc}")
            for name in sorted(set(group.commands) - before):
                command = group.commands[name]
                if name in reserved:
                    del group.commands[name]
                    self._record_error(impl.plugin_name, f"command {name!r} is gentk's own; not replaced")
                elif command.callback is not None:
                    command.callback = _blamed(command.callback, f"plugin {impl.plugin_name!r}", name)

    # -- names ------------------------------------------------------------------------
    def check_hook_names(self, plugin_name: str | None = None) -> None:
        """Hook implementations that match no gentk hook (misspelled) are load errors."""
        known = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "gentk_spec"))
        for name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, name)
            if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; gentk's hooks: {', '.join(known)}"
            for impl in caller.get_hookimpls():
                if plugin_name is None or impl.plugin_name == plugin_name:
                    self._record_error(impl.plugin_name, f"hook {name!r} is not a gentk hook{hint}")


def _blamed(callback, who: str, command: str):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except (GentkError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            import click

            if isinstance(exc, click.exceptions.ClickException | click.exceptions.Abort | click.exceptions.Exit):
                raise
            raise PluginError(f"{who} failed in command {command!r}: {type(exc).__name__}: {exc}") from exc

    return run


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


def _load_order(ep) -> tuple:
    dist = getattr(ep, "dist", None)
    dist_name = (dist.name if dist else "").lower().replace("_", "-")
    return (dist_name != BUILTIN_DISTRIBUTION, dist_name, ep.name)


def _located_in_cwd(dist) -> bool:
    try:
        return Path(dist.locate_file("")).resolve() == Path.cwd().resolve()
    except (OSError, TypeError, ValueError, NotImplementedError):
        return False


def _installed_entry_points() -> list:
    """The "gentk" entry points of installed distributions. Metadata lying in the current
    directory (the .egg-info a `pip install .` leaves in a source checkout, which `python -m`
    puts on sys.path) is not an installation: the installed copy is used if there is one, else
    the plugin is not loaded, so `gentk` and `python -m gentk` load the same plugins."""
    out = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is None or not _located_in_cwd(dist):
            out.append(ep)
            continue
        name = dist.metadata["Name"]
        for other in metadata.distributions(name=name):
            if not _located_in_cwd(other):
                out += [e for e in other.entry_points if e.group == ENTRY_POINT_GROUP and e.name == ep.name]
                break
    return out


def load_registry() -> Registry:
    pm = pluggy.PluginManager("gentk")
    pm.add_hookspecs(hookspecs)
    pm.register(core_plugin, name=core_plugin.NAME)
    registry = Registry(pm)
    allowed = _allowed()
    for ep in sorted(_installed_entry_points(), key=_load_order):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
        if ep.name in registry.plugins:
            registry._record_error(ep.name, f"a second entry point named {ep.name!r} "
                                            f"(distribution {info.distribution}) was ignored")
            continue
        registry.plugins[ep.name] = info
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the CLI
            info.error = f"{type(exc).__name__}: {exc}"
    registry.check_hook_names()
    if allowed:
        unknown = sorted(allowed - set(registry.plugins))
        if unknown:
            registry._record_error(core_plugin.NAME, f"GENTK_LOAD_PLUGINS names {', '.join(unknown)}, which no "
                                                     "installed plugin is called (see `gentk plugins`)")
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
    """Register an in-process plugin object (tests, notebooks); it is asked before installed ones."""
    registry = get_registry()
    registry.pm.register(obj, name=name)
    registry.plugins[name] = PluginInfo(name)
    registry.check_hook_names(name)
    registry._models = None
    registry._datasets = None
    registry._loggers = None


def unregister_plugin(name: str) -> None:
    registry = get_registry()
    plugin = registry.pm.get_plugin(name)
    if plugin is not None:
        registry.pm.unregister(plugin)
    registry.plugins.pop(name, None)
    registry._models = None
    registry._datasets = None
    registry._loggers = None
