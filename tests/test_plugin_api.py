"""Plugin API 2: overrides by tryfirst, runs record their plugins, mistakes named in one line,
datasets and commands from plugins, labels in batches, and the CLI generated from TrainConfig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gentk
from gentk.checkpoint import list_checkpoints
from gentk.data import Dataset, DatasetSpec
from gentk.engine import train
from gentk.plugins import get_registry
from gentk.testing import registered, tiny_image_folder

from conftest import TINY_TRAIN, last_line_error, metric_rows, one_line_error, python_gentk
from test_hooks import _Stripes

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def beta4_source() -> str:
    """The override plugin of docs/writing-a-plugin.md section 8, exactly as printed there."""
    from test_tutorial import blocks

    block, = blocks("python", part=1)
    return block


class Beta4:
    """The same override, in-process."""

    def __init__(self):
        namespace: dict = {}
        exec(beta4_source(), namespace)  # noqa: S102 - our own documentation's code
        self.adjust_beta = namespace["adjust_beta"]
        self.GENTK_MODELS = namespace["GENTK_MODELS"]


# -- precedence: an installed override wins, whatever the entry-point order ---------------

@pytest.fixture
def installed_beta4(tmp_path):
    root = tmp_path / "gentk-beta4"
    (root / "gentk_beta4").mkdir(parents=True)
    (root / "gentk_beta4" / "__init__.py").write_text(beta4_source())
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "gentk-beta4"\nversion = "0.3.0"\ndependencies = ["gentk"]\n'
        '[project.entry-points.gentk]\nbeta4 = "gentk_beta4"\n[tool.setuptools]\npackages = ["gentk_beta4"]\n')
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", str(root)], check=True, capture_output=True)
    try:
        yield root
    finally:
        subprocess.run(pip + ["uninstall", "-y", "gentk-beta4"], capture_output=True)  # (the test may have)


def _betas(run: Path) -> list[float]:
    return [r["beta"] for r in metric_rows(run) if "split" not in r]


def test_installed_override_wins_under_gentk_and_python_m_from_any_folder(installed_beta4, tmp_path, tiny_data):
    console_script = Path(sys.executable).with_name("gentk")
    env = dict(os.environ, GENTK_OFFLINE="1", GENTK_HOME=str(tmp_path / "home"))
    args = ["train", "vae", "--max-steps", "8", "--data", tiny_data, *TINY_TRAIN]
    # From the plugin's own folder (where its sources shadow the installed copy on sys.path) and elsewhere.
    for i, (cmd, cwd) in enumerate([([str(console_script)], installed_beta4), (python_gentk(), installed_beta4),
                                     ([str(console_script)], tmp_path), (python_gentk(), tmp_path)]):
        run = tmp_path / f"run{i}"
        done = subprocess.run(cmd + args + ["--run-dir", str(run)], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert _betas(run) == [1.0] * 6 + [4.0] * 2, (cmd, cwd)  # 6 steps per epoch; beta 4 from epoch 1
        recorded = {p["name"]: p for p in json.loads((run / "config.json").read_text())["plugins"]}
        assert recorded["beta4"] == {"name": "beta4", "distribution": "gentk-beta4", "version": "0.3.0"}
        assert recorded["vae"]["distribution"] == "gentk"
    listing = subprocess.run(python_gentk() + ["plugins", "--json"], env=env, capture_output=True, text=True)
    order = json.loads(listing.stdout)["precedence"]["vae"]["adjust_beta"]
    assert order == ["beta4 (tryfirst)", "vae (model class)"]
    # Not loaded any more (GENTK_LOAD_PLUGINS leaves it out): the run refuses to go on without it.
    env["GENTK_LOAD_PLUGINS"] = "vae"
    refused = subprocess.run(python_gentk() + ["train", "vae", "--run-dir", str(tmp_path / "run0"), "--resume",
                                               "--max-steps", "12", "--no-progress"],
                             env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "plugin 'beta4' (gentk-beta4 0.3.0) acted on the run but does not now" \
        in refused.stderr and "Traceback" not in refused.stderr
    # Uninstalled for real: `python -m gentk` from the plugin's own folder, where `pip install .` left
    # its .egg-info on sys.path, agrees with `gentk` and refuses too.
    del env["GENTK_LOAD_PLUGINS"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["uninstall", "-y", "gentk-beta4"], check=True, capture_output=True)
    for cmd in ([str(console_script)], python_gentk()):
        refused = subprocess.run(cmd + ["train", "vae", "--run-dir", str(tmp_path / "run0"), "--resume",
                                        "--max-steps", "12", "--no-progress"],
                                 cwd=installed_beta4, env=env, capture_output=True, text=True)
        assert refused.returncode == 1 and "plugin 'beta4'" in refused.stderr, (cmd, refused.stderr)


# -- runs record their plugins ---------------------------------------------------------------

def test_resume_refused_after_adding_or_removing_a_plugin_that_acts(gentk_cli, tmp_path, tiny_data):
    base = ["train", "vae", "--max-steps", "4", "--data", tiny_data, *TINY_TRAIN]
    with registered(Beta4(), "beta4"):
        assert gentk_cli(*base, "--run-dir", tmp_path / "with").code == 0
    before = (tmp_path / "with" / "config.json").read_text()
    line = one_line_error(gentk_cli("train", "vae", "--run-dir", tmp_path / "with", "--resume", "--max-steps", "6"), 1)
    assert "plugin 'beta4' (registered in-process) acted on the run but does not now" in line
    assert (tmp_path / "with" / "config.json").read_text() == before  # a refused resume changes nothing

    assert gentk_cli(*base, "--run-dir", tmp_path / "without").code == 0
    with registered(Beta4(), "beta4"):
        line = last_line_error(gentk_cli("train", "vae", "--run-dir", tmp_path / "without", "--resume",
                                         "--max-steps", "6"), 1)  # after "plugins acting on vae: beta4"
        assert "plugin 'beta4' (registered in-process) has hooks that would act on this run's model" in line
        # With the same plugins the resume goes on.
        assert gentk_cli("train", "vae", "--run-dir", tmp_path / "with", "--resume", "--max-steps", "6",
                         "--no-progress").code == 0


def test_a_plugin_that_only_adds_a_model_does_not_act_on_other_models():
    from gentk_vae import VAEModel

    class OnlyAModel:
        @gentk.hookimpl
        def register_models(self, register):
            register(gentk.ModelSpec("vae2", get_registry().spec("vae").options, gentk.TrainDefaults(1, 8, 1e-3),
                                     model=VAEModel))

    class Everywhere:  # no GENTK_MODELS: called for, and recorded on, every model
        @gentk.hookimpl
        def on_step(self, model, phase, state, metrics):
            pass

    with registered(OnlyAModel(), "vae2-plugin"), registered(Beta4(), "beta4"):
        assert [p["name"] for p in get_registry().acting_plugins("vae")] == ["beta4", "vae"]
        assert [p["name"] for p in get_registry().acting_plugins("vae2")] == ["vae2-plugin"]  # GENTK_MODELS
        assert get_registry().precedence("gan")["adjust_beta"] == ["gan (model class)"]
        with registered(Everywhere(), "everywhere"):
            assert [p["name"] for p in get_registry().acting_plugins("gan")] == ["everywhere", "gan"]


def test_a_scoped_override_leaves_other_models_runs_resumable(gentk_cli, tmp_path, tiny_data):
    base = ["train", "gan", "--max-steps", "2", "--data", tiny_data, "--run-dir", tmp_path / "g", *TINY_TRAIN]
    assert gentk_cli(*base).code == 0
    with registered(Beta4(), "beta4"):  # it changes vae only
        assert gentk_cli("train", "gan", "--run-dir", tmp_path / "g", "--resume", "--max-steps", "4",
                         "--no-progress").code == 0


# -- mistakes are caught and named -------------------------------------------------------------

class _Misspelled:
    @gentk.hookimpl
    def on_stepp(self, model, phase, state, metrics):
        raise AssertionError("never called")


def test_misspelled_hook_is_a_load_error_and_a_one_line_warning(gentk_cli, tmp_path, tiny_data):
    with registered(_Misspelled(), "typo"):
        rows = {r["name"]: r for r in json.loads(gentk_cli("plugins", "--json").out)["plugins"]}
        assert "hook 'on_stepp' is not a gentk hook; did you mean on_step?" in rows["typo"]["error"]
        result = gentk_cli("train", "vae", "--max-steps", "1", "--data", tiny_data, "--run-dir", tmp_path / "r",
                           *TINY_TRAIN)
    assert result.code == 0, result
    warnings = [line for line in result.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "plugin 'typo'" in warnings[0] and "on_stepp" in warnings[0]


def test_model_of_a_plugin_that_failed_to_load_names_the_plugin(gentk_cli, monkeypatch):
    from importlib import metadata

    from gentk import plugins as plugins_mod
    from gentk.plugins import reset_registry

    broken = metadata.EntryPoint("mymodel", "gentk_no_such_module_xyz", "gentk")
    real = metadata.entry_points
    monkeypatch.setattr(plugins_mod.metadata, "entry_points",
                        lambda group=None, **kw: list(real(group=group, **kw)) + [broken])
    reset_registry()
    line = one_line_error(gentk_cli("train", "mymodel", "--max-steps", "1"), 2)
    assert "model 'mymodel''s plugin mymodel failed to load: ModuleNotFoundError" in line


def _answering(hook_name: str, answer):
    """A tryfirst plugin answering ``hook_name`` for every model with ``answer(model, ...)``."""

    class Plugin:
        pass

    if hook_name == "compute_loss":
        def impl(self, model, phase, batch, state):
            return answer(model, phase, batch, state)
    elif hook_name == "adjust_beta":
        def impl(self, model, state, kl):
            return answer(model, state, kl)
    else:
        def impl(self, model, phase, state, metrics):
            answer(model, phase, state, metrics)
    impl.__name__ = hook_name
    setattr(Plugin, hook_name, gentk.hookimpl(tryfirst=True)(impl))
    return Plugin()


def _vae_loss(model, batch):
    recon, kl = model.losses(batch.images)
    return recon + kl


MISTAKES = {
    "a tensor, not a dict": ("compute_loss", lambda m, p, b, s: _vae_loss(m, b),
                             "hook compute_loss: returned a Tensor; return a dict with 'loss'"),
    "a 3-element metric": ("compute_loss", lambda m, p, b, s: {"loss": _vae_loss(m, b), "v": torch.zeros(3)},
                           "hook compute_loss: metric 'v' is a tensor of shape (3,)"),
    "a string metric": ("compute_loss", lambda m, p, b, s: {"loss": _vae_loss(m, b), "note": "hi"},
                        "hook compute_loss: metric 'note' is a str"),
    "an integer loss": ("compute_loss", lambda m, p, b, s: {"loss": torch.tensor(3)},
                        "'loss' is a torch.int64 tensor of shape ()"),
    "a string beta": ("adjust_beta", lambda m, s, kl: "4", "hook adjust_beta: returned '4'; return a finite number"),
    "a NaN beta": ("adjust_beta", lambda m, s, kl: float("nan"), "hook adjust_beta: returned nan"),
    "a tensor in state.extra": ("on_step", lambda m, p, s, metrics: s.extra.update(mine=torch.ones(2)),
                                "hook on_step: state.extra['mine'] is not JSON"),
    "a complex metric from on_step": ("on_step", lambda m, p, s, metrics: metrics.update(c=torch.tensor(1j)),
                                      "hook on_step: metric 'c' is a torch.complex64 tensor"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_hook_mistakes_are_one_line_naming_plugin_and_hook(case, gentk_cli, tmp_path, tiny_data):
    hook, answer, expected = MISTAKES[case]
    run = tmp_path / "r"
    with registered(_answering(hook, answer), "sloppy"):
        result = gentk_cli("train", "vae", "--max-steps", "3", "--checkpoint-every", "1", "--data", tiny_data,
                           "--run-dir", run, *TINY_TRAIN)
    line = last_line_error(result, 1)
    assert "plugin 'sloppy'" in line and expected in line, line
    ckpts = run / "checkpoints"
    weights = sorted(p.stem for p in ckpts.glob("*.safetensors")) if ckpts.is_dir() else []
    assert weights == list_checkpoints(ckpts)[::-1], "a checkpoint without its sidecar"


class _BadBuilder:
    def __init__(self, make):
        self.make = make

    @gentk.hookimpl(tryfirst=True)
    def build_model(self, name, options, spec):
        return self.make(spec, options)


def _wrong_range(spec, options):
    model = spec.model(options)
    model.value_range = "0-255"
    return model


@pytest.mark.parametrize("make, expected", [
    (lambda spec, options: torch.nn.Linear(2, 2), "hook build_model: returned Linear, not a gentk.GenerativeModel"),
    (_wrong_range, "has value_range '0-255'; use one of unit, symmetric"),
])
def test_build_model_mistakes_are_named(make, expected, gentk_cli, tmp_path, tiny_data):
    with registered(_BadBuilder(make), "builder"):
        line = last_line_error(gentk_cli("train", "vae", "--max-steps", "1", "--data", tiny_data,
                                         "--run-dir", tmp_path / "r", *TINY_TRAIN), 1)
    assert "plugin 'builder'" in line and expected in line
    assert not (tmp_path / "r").exists()  # refused before the run directory was made


def test_a_models_own_method_is_blamed_on_its_plugin(tmp_path, tiny_data):
    from gentk_vae import VAEModel

    class Broken(VAEModel):
        def compute_loss(self, phase, batch, state):
            return {"loss": "not a tensor"}

    class Plugin:
        @gentk.hookimpl
        def register_models(self, register):
            register(gentk.ModelSpec("broken-vae", get_registry().spec("vae").options,
                                     gentk.TrainDefaults(1, 8, 1e-3), model=Broken))

    with registered(Plugin(), "broken-plugin"), pytest.raises(gentk.GentkError) as err:
        train("broken-vae", tmp_path / "r", max_steps=1, data=tiny_data, device="cpu", progress=False)
    assert "plugin 'broken-plugin' (model 'broken-vae''s methods), hook compute_loss: 'loss' is str" in str(err.value)


# -- datasets and commands from plugins -------------------------------------------------------

def test_a_dataset_plugin_returning_garbage_is_named(gentk_cli, tmp_path):
    class Garbage:
        @gentk.hookimpl
        def register_datasets(self, register):
            register(DatasetSpec("junk", lambda arg, root: np.zeros((4, 28, 28), dtype=np.float32)))

    with registered(Garbage(), "junk-plugin"):
        line = last_line_error(gentk_cli("train", "gan", "--max-steps", "1", "--data", "junk", "--run-dir",
                                        tmp_path / "r", *TINY_TRAIN), 1)
    assert "plugin 'junk-plugin', dataset 'junk': load returned a ndarray, not a gentk.data.Dataset" in line


# -- labels ------------------------------------------------------------------------------------

class _BatchSpy:
    """Records each batch a model sees (and returns no loss, so the model answers)."""

    def __init__(self):
        self.train, self.held_out = [], []

    @gentk.hookimpl(tryfirst=True)
    def compute_loss(self, model, phase, batch, state):
        if batch is not None:
            self.train.append(batch)

    @gentk.hookimpl
    def on_epoch_end(self, model, state, eval_batches):
        self.held_out += list(eval_batches)


def test_batches_carry_labels_shuffled_with_their_images(tmp_path):
    spy = _BatchSpy()
    with registered(_Stripes(), "stripes"), registered(spy, "spy"):
        train("gan", tmp_path / "r", epochs=2, batch_size=8, data="stripes:24", device="cpu", progress=False)
    assert len(spy.train) == 6 and len(spy.held_out) == 2
    for batch in spy.train + spy.held_out:
        assert batch.num_classes == 2 and batch.labels.dtype == torch.int64
        assert batch.labels.device == batch.images.device
        top_lit = batch.images[:, 0, :14].mean((1, 2)) > 0  # symmetric range: lit rows are +1
        assert torch.equal(top_lit, batch.labels == 0)
    orders = [b.labels.tolist() for b in spy.train]
    assert orders[0] != orders[3]  # each epoch shuffles again, labels with their images


def test_unlabelled_batches_have_no_labels(tmp_path, tiny_data):
    spy = _BatchSpy()
    with registered(spy, "spy"):
        train("vae", tmp_path / "r", max_steps=1, batch_size=8, data=tiny_data, device="cpu", progress=False)
    assert spy.train[0].labels is None and spy.train[0].num_classes is None


def test_class_subfolders_give_labels(tmp_path):
    from gentk.data import load_dataset

    ds = load_dataset(tiny_image_folder(tmp_path / "d", n_train=12, n_test=6, classes=3))
    assert ds.class_names == ["class0", "class1", "class2"] and ds.num_classes == 3
    assert sorted(ds.train_labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert "3 classes from subfolders" in ds.source


# -- model-declared display ------------------------------------------------------------------------

def test_report_plots_what_the_model_logs_and_declares(tmp_path, tiny_data):
    from gentk.report import metric_keys

    class Zeta:
        @gentk.hookimpl
        def on_step(self, model, phase, state, metrics):
            metrics["zeta"] = 2.0

    with registered(Zeta(), "zeta"):
        train("controlvae", tmp_path / "r", max_steps=3, batch_size=8, data=tiny_data, device="cpu", progress=False)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["display"]["figures"] == {"kl_beta": [["kl", "target_kl"], ["beta"]]}
    assert config["display"]["progress"] == ["loss", "kl", "beta"]
    assert "zeta" in metric_keys(metric_rows(tmp_path / "r"), [])
    assert {p.name for p in (tmp_path / "r" / "plots").iterdir()} == {"losses.png", "kl_beta.png", "samples.png"}


def test_report_and_progress_name_no_builtin_metric():
    source = "".join((Path(gentk.__file__).parent / f).read_text() for f in ("report.py", "progress.py"))
    for name in ("recon", "kl", "beta", "wasserstein", "rotation", "gan", "real_prob"):
        assert f'"{name}"' not in source, name


# -- the CLI is generated from TrainConfig ------------------------------------------------------

def test_every_train_setting_is_an_option_with_its_help_and_default(gentk_cli):
    from gentk.config import MODEL_DEFAULT_FIELDS, cli_settings
    from gentk.options import flag_name

    text = " ".join(gentk_cli("train", "gan", "--help").out.split())
    for f in cli_settings():
        assert flag_name(f.name) in text, f.name
        assert " ".join(f.metadata["help"].split())[:30] in text, f.name
    assert "--batch-size INTEGER Images per batch (per process under torchrun). [default: 128]" in text
    assert set(MODEL_DEFAULT_FIELDS) == {"epochs", "batch_size", "lr", "data_fraction"}


def test_a_models_sample_that_raises_is_one_line_with_a_hint(gentk_cli, tmp_path, tiny_data):
    from gentk_gan import GANModel

    class ForgotConditional(GANModel):  # samples with labels, but never said conditional = True
        def sample(self, noise, labels):
            return super().sample(noise)

    class Plugin:
        @gentk.hookimpl
        def register_models(self, register):
            spec = get_registry().spec("gan")
            register(gentk.ModelSpec("forgetful", spec.options, spec.defaults, model=ForgotConditional))

    with registered(Plugin(), "forgetful-plugin"):
        line = last_line_error(gentk_cli("train", "forgetful", "--max-steps", "1", "--data", tiny_data,
                                         "--run-dir", tmp_path / "r", *TINY_TRAIN), 1)
    assert "plugin 'forgetful-plugin': model 'forgetful' failed in grids: TypeError" in line
    assert "must set conditional = True and num_classes" in line
    assert not (tmp_path / "r").exists()
