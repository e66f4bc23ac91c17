"""The CLI: help generated from option dataclasses, models listing, and one-line errors."""

import json

from conftest import TINY_TRAIN, one_line_error


def test_models_vae_json_reports_parameter_count(gentk_cli):
    result = gentk_cli("models", "vae", "--json")
    assert result.code == 0, result
    info = json.loads(result.out)
    assert info["name"] == "vae"
    assert info["parameters"] == 829_077
    assert sum(n["parameters"] for n in info["networks"].values()) == 829_077
    assert info["options"]["dim_z"]["default"] == 10


def test_models_set_builds_with_an_option_and_refuses_bad_ones(gentk_cli):
    wide = json.loads(gentk_cli("models", "vae", "--json", "--set", "width=2").out)
    wider_code = json.loads(gentk_cli("models", "vae", "--json", "--set", "--width=2", "--set", "dim-z=32").out)
    assert wide["parameters"] == 2_042_901  # the strided convolutions' channels doubled
    assert wider_code["parameters"] == 2_059_841
    assert "built with --width 2" in gentk_cli("models", "vae", "--set", "width=2").out
    assert wide["built_with"] == {"width": 2} and "built_with" not in json.loads(gentk_cli("models", "vae", "--json").out)
    for twice in (("--set", "width=2", "--set", "width=3"), ("--image-size", "32", "--set", "image-size=64")):
        assert "given twice" in one_line_error(gentk_cli("models", "vae", *twice), code=2)
    for clip in ("0", "-3"):  # an exclusive bound: 0 would stop the integral term for good
        assert f"--error-clip must be above 0 (got {float(clip)})" in one_line_error(
            gentk_cli("models", "controlvae", "--set", f"error-clip={clip}"), code=2)
    for bad, message in (("width=x", "--width must be an integer"), ("width=99", "--width must be at most 16"),
                         ("foo=1", "no option --foo"), ("width", "--set takes KEY=VALUE")):
        result = gentk_cli("models", "vae", "--set", bad)
        assert message in one_line_error(result, code=2), (bad, result)
    result = gentk_cli("models", "--set", "width=2")
    assert result.code != 0 and "describe one model" in result.err


def test_models_lists_vae(gentk_cli):
    rows = json.loads(gentk_cli("models", "--json").out)
    assert any(r["name"] == "vae" and r["plugin"] == "vae" for r in rows)


def test_models_table_shows_training_defaults_and_presets(gentk_cli):
    out = gentk_cli("models", "vae").out
    assert "training defaults: --epochs 250, --batch-size 64, --lr 0.0001" in out
    assert "preset fast: --lr 0.001 --lr-schedule cosine --epochs 25" in out
    assert "preset" not in gentk_cli("models", "ssgan").out.replace("preset paper", "")


def test_train_help_shows_model_options_and_defaults(gentk_cli):
    result = gentk_cli("train", "vae", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert "--dim-z INTEGER" in text and "[default: 10]" in text
    assert "--epochs INTEGER" in text and "[default: 250]" in text
    assert "[default: 64]" in text and "[default: 0.0001]" in text


def test_train_group_help_lists_models(gentk_cli):
    result = gentk_cli("train", "--help")
    assert result.code == 0 and "vae" in result.out




def test_unknown_model(gentk_cli):
    line = one_line_error(gentk_cli("train", "nosuchmodel"), 2)
    assert "unknown model 'nosuchmodel'" in line and "vae" in line


def test_bad_epochs(gentk_cli, tmp_path):
    for value in ("0", "-3"):
        line = one_line_error(gentk_cli("train", "vae", "--epochs", value, "--run-dir", tmp_path / "r"), 2)
        assert "--epochs must be at least 1" in line
    assert not (tmp_path / "r").exists()


def test_non_integer_epochs(gentk_cli):
    line = one_line_error(gentk_cli("train", "vae", "--epochs", "many"), 2)
    assert "'many' is not a valid integer" in line


def test_unknown_data(gentk_cli, tmp_path):
    line = one_line_error(gentk_cli("train", "vae", "--data", "cifar", "--run-dir", tmp_path / "r",
                                     "--no-progress"), 2)
    assert "unknown --data 'cifar'" in line


def test_missing_data_root(gentk_cli, tmp_path):
    line = one_line_error(gentk_cli("train", "vae", "--data-root", tmp_path / "nope", "--run-dir",
                                     tmp_path / "r", "--no-progress"), 2)
    assert "does not exist" in line


def test_existing_run_dir_is_never_overwritten(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    assert gentk_cli("train", "vae", "--max-steps", "2", "--data", tiny_data, "--run-dir", run, *TINY_TRAIN).code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = one_line_error(gentk_cli("train", "vae", "--max-steps", "2", "--data", tiny_data, "--run-dir", run,
                                     *TINY_TRAIN), 1)
    assert "already exists" in line and "--resume" in line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert before == after


def test_resume_with_changed_options_is_refused(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    assert gentk_cli("train", "vae", "--max-steps", "2", "--data", tiny_data, "--run-dir", run, *TINY_TRAIN).code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = one_line_error(gentk_cli("train", "vae", "--resume", "--max-steps", "4", "--dim-z", "12",
                                     "--run-dir", run, "--no-progress"), 1)
    assert "--dim-z (run: 10, now: 12)" in line
    line = one_line_error(gentk_cli("train", "vae", "--resume", "--lr", "0.1", "--run-dir", run,
                                     "--no-progress"), 1)
    assert "--lr" in line
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resume_of_missing_run(gentk_cli, tmp_path):
    line = one_line_error(gentk_cli("train", "vae", "--resume", "--run-dir", tmp_path / "none"), 1)
    assert "none does not exist" in line


def test_debug_shows_traceback(gentk_cli, monkeypatch):
    import pytest

    from gentk.errors import UnknownModelError

    monkeypatch.setenv("GENTK_DEBUG", "1")
    with pytest.raises(UnknownModelError):
        from gentk.cli import main

        main(["train", "nosuchmodel"])


def test_python_m_gentk_works():
    import subprocess
    import sys

    import gentk

    proc = subprocess.run([sys.executable, "-m", "gentk", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and gentk.__version__ in proc.stdout
