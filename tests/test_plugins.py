"""Plugin loading: entry points, load errors, GENTK_LOAD_PLUGINS, hook errors named by plugin."""

import json
from importlib import metadata

import pytest

import gentk
from gentk import plugins as plugins_mod
from gentk.errors import PluginError
from gentk.plugins import get_registry, register_plugin, unregister_plugin, reset_registry

from conftest import TINY_TRAIN


def _with_extra_entry_points(monkeypatch, *extra):
    real = metadata.entry_points

    def fake(group=None, **kw):
        found = list(real(group=group, **kw))
        return found + [e for e in extra if e.group == group]

    monkeypatch.setattr(plugins_mod.metadata, "entry_points", fake)
    reset_registry()


def test_plugins_json_lists_vae_with_version_and_hooks(gentk_cli):
    result = gentk_cli("plugins", "--json")
    assert result.code == 0, result
    rows = {r["name"]: r for r in json.loads(result.out)["plugins"]}
    assert rows["vae"]["version"] == gentk.__version__
    assert rows["vae"]["distribution"] == "gentk"
    assert rows["vae"]["hooks"] == ["register_models"]  # its behaviour is on VAEModel, reached through gentk's core
    assert rows["vae"]["error"] is None


def test_broken_plugin_is_listed_and_training_still_works(gentk_cli, monkeypatch, tiny_data, tmp_path):
    broken = metadata.EntryPoint("broken", "gentk_no_such_module_xyz", "gentk")
    _with_extra_entry_points(monkeypatch, broken)
    rows = {r["name"]: r for r in json.loads(gentk_cli("plugins", "--json").out)["plugins"]}
    assert "ModuleNotFoundError" in rows["broken"]["error"]
    assert rows["vae"]["error"] is None
    result = gentk_cli("train", "vae", "--max-steps", "2", "--data", tiny_data, "--run-dir", tmp_path / "r",
                       *TINY_TRAIN)
    assert result.code == 0, result
    assert (tmp_path / "r" / "checkpoints" / "latest").is_file()


def test_load_plugins_env_restricts(monkeypatch, gentk_cli):
    monkeypatch.setenv("GENTK_LOAD_PLUGINS", "")
    assert json.loads(gentk_cli("plugins", "--json").out)["plugins"] == []
    result = gentk_cli("train", "vae", "--max-steps", "1")
    assert result.code == 2 and "unknown model 'vae'" in result.err
    monkeypatch.setenv("GENTK_LOAD_PLUGINS", "vae")
    reset_registry()
    assert [r["name"] for r in json.loads(gentk_cli("plugins", "--json").out)["plugins"]] == ["vae"]


class _RaisingRegister:
    @gentk.hookimpl
    def register_models(self, register):
        raise RuntimeError("boom at registration")


def test_register_models_error_is_recorded_not_fatal(gentk_cli):
    register_plugin(_RaisingRegister(), "bad-register")
    try:
        rows = {r["name"]: r for r in json.loads(gentk_cli("plugins", "--json").out)["plugins"]}
        assert "boom at registration" in rows["bad-register"]["error"]
        assert "vae" in get_registry().models()
    finally:
        unregister_plugin("bad-register")


class _RaisingLoss:
    @gentk.hookimpl
    def compute_loss(self, model, phase, batch, state):
        raise ValueError("bad loss")


def test_hook_exception_names_plugin_and_hook(gentk_cli, tiny_data, tmp_path):
    register_plugin(_RaisingLoss(), "lossy")
    try:
        result = gentk_cli("train", "vae", "--max-steps", "1", "--data", tiny_data, "--run-dir", tmp_path / "r",
                           *TINY_TRAIN)
    finally:
        unregister_plugin("lossy")
    assert result.code == 1
    assert "plugin 'lossy' failed in hook compute_loss: ValueError: bad loss" in result.err
    assert "Traceback" not in result.err


def test_registry_call_blames_directly():
    register_plugin(_RaisingLoss(), "lossy")
    try:
        with pytest.raises(PluginError, match="'lossy'"):
            get_registry().call("compute_loss", model=None, phase="x", batch=None, state=None)
    finally:
        unregister_plugin("lossy")
