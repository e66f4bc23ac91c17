"""Every hook is documented in docs/plugins.md with its exact signature, and has a test here.

A hook added to gentk/hookspecs.py without a `### name(args)` heading in the
docs, or without a `test_hook_<name>` function in this file, fails these tests.
"""

import inspect
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

import gentk
from gentk.data import Dataset, DatasetSpec
from gentk import hookspecs
from gentk.engine import train
from gentk.plugins import get_registry
from gentk.testing import registered

from conftest import TINY_TRAIN, one_line_error

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hookspec_signatures() -> dict[str, str]:
    return {name: f"{name}({', '.join(inspect.signature(fn).parameters)})"
            for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "gentk_spec")}


def test_every_hook_is_documented_with_its_signature():
    headings = set(re.findall(r"^### (\w+\(.*\))\s*$", DOCS.read_text(), flags=re.M))
    missing = sorted(set(hookspec_signatures().values()) - headings)
    assert not missing, f"hooks without a '### signature' heading in docs/plugins.md: {missing}"
    stale = sorted(h for h in headings if h.split("(")[0] not in hookspec_signatures())
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {stale}"


def test_every_hook_has_a_test():
    tests = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    missing = sorted(h for h in hookspec_signatures() if f"test_hook_{h}" not in tests)
    assert not missing, f"hooks without a test_hook_<name> test in tests/test_hooks.py: {missing}"


def test_hookspecs_match_the_plugin_manager():
    assert set(hookspec_signatures()) == {
        name for name in dir(get_registry().pm.hook) if not name.startswith("_")}


# -- one test per hook ---------------------------------------------------------------------

class Recorder:
    """A plugin that records the calls it sees for the built-in VAE and changes nothing."""

    def __init__(self):
        self.calls = []

    @gentk.hookimpl
    def on_step(self, model, phase, state, metrics):
        self.calls.append(("on_step", phase, state.step))
        metrics["recorded"] = 1.0

    @gentk.hookimpl
    def on_epoch_end(self, model, state, eval_batches):
        n = sum(len(batch) for batch in eval_batches)
        self.calls.append(("on_epoch_end", state.epoch, n))
        return {"recorded_images": n}


def test_hook_register_models(gentk_cli):
    models = get_registry().models()
    assert {"vae", "controlvae", "gan", "wgan", "ssgan"} <= set(models)
    spec, plugin = models["gan"]
    assert plugin == "gan" and spec.defaults.batch_size == 128


def test_hook_build_model():
    from gentk.options import build_options

    spec = get_registry().spec("vae")
    model = get_registry().call("build_model", name="vae", options=build_options(spec.options, {"dim_z": 3}),
                                spec=spec)
    assert isinstance(model, gentk.GenerativeModel) and model.options.dim_z == 3
    assert get_registry().call("build_model", name="not-a-model", options=None, spec=None) is None

    class Wider:  # a plugin that builds another plugin's model its own way
        @gentk.hookimpl(tryfirst=True)
        def build_model(self, name, options):
            if name == "vae":
                return type(model)(build_options(spec.options, {"dim_z": 7}))

    with registered(Wider(), "wider"):
        assert get_registry().build_model(spec, {"dim_z": 3}).options.dim_z == 7


def test_hook_compute_loss():
    from gentk.state import TrainState
    from gentk_vae import VAEModel, VAEOptions

    model = VAEModel(VAEOptions())
    state = TrainState(2, torch.device("cpu"))
    batch = gentk.Batch(torch.rand(2, 1, 64, 64))
    out = get_registry().call("compute_loss", model=model, phase="vae", batch=batch, state=state)
    assert set(out) == {"loss", "recon", "kl", "beta"} and out["loss"].requires_grad


def test_hook_on_step(tmp_path, tiny_data):
    recorder = Recorder()
    with registered(recorder, "recorder"):
        summary = train("gan", tmp_path / "r", max_steps=2, batch_size=8, data=tiny_data, device="cpu",
                        progress=False)
    assert [c for c in recorder.calls if c[0] == "on_step"] == [
        ("on_step", "discriminator", 0), ("on_step", "generator", 0),
        ("on_step", "discriminator", 1), ("on_step", "generator", 1)]
    assert summary["last"]["generator_recorded"] == 1.0  # metrics added in on_step are logged


def test_hook_adjust_beta(tmp_path, tiny_data):
    class Cyclic:
        @gentk.hookimpl
        def adjust_beta(self, model, state, kl):
            return 0.5 * (state.step % 2)  # a third party overrides the built-in VAE's constant

    with registered(Cyclic(), "cyclic"):
        train("vae", tmp_path / "r", max_steps=4, batch_size=8, data=tiny_data, device="cpu", progress=False)
    import json

    rows = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["beta"] for r in rows] == [0.0, 0.5, 0.0, 0.5]


def test_hook_on_epoch_end(tmp_path, tiny_data):
    recorder = Recorder()
    with registered(recorder, "recorder"):
        train("gan", tmp_path / "r", epochs=2, batch_size=8, data=tiny_data, device="cpu", progress=False,
              eval_limit=10)
    assert [c for c in recorder.calls if c[0] == "on_epoch_end"] == [("on_epoch_end", 1, 10), ("on_epoch_end", 2, 10)]


class _Stripes:
    """A dataset plugin: ``--data stripes:N`` makes N striped images per split, labelled by stripe."""

    @gentk.hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("stripes", self.load, "horizontal stripes (test)", arg="optional", arg_help="N"))

    @staticmethod
    def load(arg, data_root):
        n = int(arg or 24)
        labels = np.arange(n) % 2
        x = np.zeros((n, 1, 28, 28), dtype=np.uint8)
        x[labels == 0, :, :14] = 255
        x[labels == 1, :, 14:] = 255
        return Dataset("stripes", x, x[:8].copy(), f"stripes: {n} generated images", labels, labels[:8].copy(),
                       ["top", "bottom"])


def test_hook_register_datasets(gentk_cli, tmp_path):
    with registered(_Stripes(), "stripes"):
        listed = {r["name"]: r for r in json.loads(gentk_cli("datasets", "--json").out)}
        assert listed["stripes"]["plugin"] == "stripes" and listed["stripes"]["usage"] == "stripes:N"
        assert {"mnist", "fashion-mnist", "folder"} <= set(listed)  # gentk's own go through the same hook
        result = gentk_cli("train", "gan", "--max-steps", "2", "--data", "stripes:16", "--run-dir", tmp_path / "r",
                           *TINY_TRAIN)
        assert result.code == 0, result
        assert "stripes: 16 generated images" in result.err
        unknown = one_line_error(gentk_cli("train", "gan", "--data", "strips", "--run-dir", tmp_path / "u"), 2)
        assert "unknown --data 'strips'; available:" in unknown and "stripes" in unknown
    assert not (tmp_path / "u").exists()


def test_hook_register_commands(gentk_cli):
    import click

    class Commands:
        @gentk.hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def hello(name):
                """Say hello (a plugin's command)."""
                click.echo(f"hello {name}")

            @cli.command()
            def boom():
                raise ValueError("kaput")

            @cli.command(name="fid")
            def fake_fid():
                click.echo("not gentk's fid")

    with registered(Commands(), "greeter"):
        assert gentk_cli("hello", "world").out == "hello world\n"
        assert "hello" in gentk_cli("--help").out
        line = one_line_error(gentk_cli("boom"), 1)
        assert "plugin 'greeter' failed in command 'boom': ValueError: kaput" in line
        assert "not gentk's fid" not in gentk_cli("fid", "--help").out
        rows = {r["name"]: r for r in json.loads(gentk_cli("plugins", "--json").out)["plugins"]}
        assert "command 'fid' is gentk's own; not replaced" in rows["greeter"]["error"]


def test_hook_register_loggers(tmp_path, tiny_data):
    import gentk
    from gentk.loggers import Logger, LoggerSpec
    from gentk.testing import registered

    seen = []

    class Memory(Logger):
        def __init__(self, run_dir, config, resume_step):
            seen.append(("open", resume_step))

        def log_metrics(self, step, values, split):
            seen.append((step, split, sorted(values)))

    class Plugin:
        @gentk.hookimpl
        def register_loggers(self, register):
            register(LoggerSpec("memory", Memory))

    with registered(Plugin(), "memory-logger"):
        train("vae", tmp_path / "r", max_steps=3, logger=["memory"], data=tiny_data, batch_size=8, device="cpu",
              progress=False)
    assert seen[0] == ("open", None)
    assert seen[1] == (1, "train", ["beta", "kl", "loss", "recon"])
