"""More bad input: each gives one line, a non-zero exit, no traceback, and changes nothing."""

import json
import os
import re
import subprocess

import pytest

from gentk.engine import train

from conftest import TINY_TRAIN, one_line_error, python_gentk




@pytest.mark.parametrize("args, code, expected", [
    (["--device", "cuda:7"], 2, "--device"),
    (["--device", "tpu"], 2, "--device 'tpu'"),
    (["--lr", "0"], 2, "--lr must be positive"),
    (["--lr", "-1e-3"], 2, "--lr must be positive"),
    (["--data-fraction", "1.5"], 2, "--data-fraction must be in (0, 1]"),
    (["--batch-size", "0"], 2, "--batch-size must be at least 1"),
    (["--max-steps", "0"], 2, "--max-steps must be at least 1"),
    (["--checkpoint-every", "0"], 2, "--checkpoint-every must be at least 1"),
    (["--no-such-option"], 2, "No such option"),
    (["--on-nan", "ignore"], 2, "'ignore' is not one of"),
])
def test_bad_train_options(gentk_cli, tmp_path, tiny_data, args, code, expected):
    run = tmp_path / "r"
    line = one_line_error(gentk_cli("train", "vae", "--data", tiny_data, "--run-dir", run, "--no-progress", *args), code)
    assert expected in line
    assert not run.exists()


def test_unknown_preset(gentk_cli):
    assert "'fast' is not one of ssgan's presets (paper)" in one_line_error(gentk_cli("train", "ssgan", "--preset", "fast"), 2)


def test_a_second_preset_is_refused_not_dropped(gentk_cli, tmp_path):
    result = gentk_cli("train", "vae", "--preset", "recon", "--preset", "fast", "--run-dir", tmp_path / "r")
    assert "given twice (recon, fast)" in one_line_error(result, 2)
    assert not (tmp_path / "r").exists()


def test_a_refused_value_the_preset_set_names_the_preset(gentk_cli, tmp_path, tiny_data):
    common = ("--data", tiny_data, "--data-fraction", "0.5", "--run-dir", tmp_path / "r", "--no-progress",
              "--max-steps", "1")

    def last_line(result):  # after the data line, which says what was read
        assert result.code == 2 and "Traceback" not in result.err, result
        return result.err.strip().splitlines()[-1]

    line = last_line(gentk_cli("train", "vae", "--preset", "recon", *common))  # batch 32 > 24 images
    assert line.startswith("Error: --batch-size 32 is more than") and "(--preset recon sets --batch-size" in line
    line = last_line(gentk_cli("train", "vae", "--preset", "recon", "--batch-size", "30", *common))
    assert "--batch-size 30 is more than" in line and "--preset" not in line  # the user's own value: no preset named
    # A value a --config file set is the file's to name, as a preset's is the preset's.
    (tmp_path / "p.toml").write_text('preset = "recon"\nbatch_size = 30\n')
    line = last_line(gentk_cli("train", "vae", "--config", tmp_path / "p.toml", *common))
    assert "--batch-size 30 is more than" in line and f"(--config {tmp_path / 'p.toml'} sets --batch-size" in line
    line = last_line(gentk_cli("train", "vae", "--config", tmp_path / "p.toml", "--batch-size", "28", *common))
    assert "--batch-size 28 is more than" in line and "--config" not in line
    assert not (tmp_path / "r").exists()


def test_run_dir_that_is_a_file(gentk_cli, tmp_path, tiny_data):
    path = tmp_path / "file"
    path.write_text("keep me")
    line = one_line_error(gentk_cli("train", "vae", "--data", tiny_data, "--run-dir", path, *TINY_TRAIN), 1)
    assert "is a file" in line and path.read_text() == "keep me"


def test_sample_count_must_be_positive(gentk_cli, tmp_path, tiny_data):
    train("vae", tmp_path / "r", max_steps=1, batch_size=8, data=tiny_data, device="cpu", progress=False)
    assert "-n must be at least 1" in one_line_error(gentk_cli("sample", tmp_path / "r", "-n", "0", "-o", tmp_path / "o"), 2)


def test_sample_with_escaping_checkpoint_name(gentk_cli, tmp_path, tiny_data):
    train("vae", tmp_path / "r", max_steps=1, batch_size=8, data=tiny_data, device="cpu", progress=False)
    line = one_line_error(gentk_cli("sample", tmp_path / "r", "--checkpoint", "../../etc/passwd", "-o", tmp_path / "o"), 1)
    assert "not a checkpoint name" in line


def test_all_checkpoints_damaged(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    train("vae", run, max_steps=2, checkpoint_every=1, batch_size=8, data=tiny_data, device="cpu", progress=False)
    for path in (run / "checkpoints").glob("*.safetensors"):
        path.write_bytes(b"garbage")
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--max-steps", "3", "--no-progress")
    assert result.code == 1 and "no intact checkpoint" in result.err and "Traceback" not in result.err


def test_corrupt_config_json(gentk_cli, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{ this is not json")
    line = one_line_error(gentk_cli("train", "vae", "--run-dir", run, "--resume"), 1)
    assert "config.json is not readable JSON" in line
    assert "config.json is not readable JSON" in one_line_error(gentk_cli("sample", run, "-o", tmp_path / "o"), 1)


def test_installed_broken_plugin_end_to_end(tmp_path, tiny_data):
    """A real distribution on sys.path whose entry point cannot import: listed, and nothing else breaks."""
    site = tmp_path / "site"
    dist = site / "gentk_broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gentk-broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gentk]\nbroken = gentk_broken_plugin_module\n")
    (site / "gentk_broken_plugin_module.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    listing = subprocess.run(python_gentk() + ["plugins", "--json"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)["plugins"]}
    assert rows["broken"]["distribution"] == "gentk-broken-plugin" and rows["broken"]["version"] == "1.0"
    assert "this plugin is broken on purpose" in rows["broken"]["error"]
    run = subprocess.run(python_gentk() + ["train", "vae", "--max-steps", "1", "--data", tiny_data, "--run-dir",
                                           str(tmp_path / "r"), *TINY_TRAIN], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


def test_resume_that_would_shrink_or_re_preset_a_run_is_refused(gentk_cli, tmp_path, tiny_data):
    from conftest import TINY_TRAIN

    run = tmp_path / "r"
    assert gentk_cli("train", "gan", "--max-steps", "4", "--data", tiny_data, "--run-dir", run, *TINY_TRAIN).code == 0
    before = (run / "config.json").read_bytes()
    with (run / "metrics.jsonl").open("a") as f:  # as a session killed after its last checkpoint leaves it
        f.write('{"step": 5, "epoch": 0, "loss": 1.0}\n')
    rows = (run / "metrics.jsonl").read_bytes()
    result = gentk_cli("train", "gan", "--run-dir", run, "--resume", "--max-steps", "2", "--no-progress")
    assert result.code != 0 and "has trained 4 steps" in result.err and "a plan of at least 4 steps" in result.err and "Traceback" not in result.err
    assert "resumed" not in result.err and (run / "metrics.jsonl").read_bytes() == rows  # refused before either
    assert result.err.strip().splitlines()[-1].startswith("Error: ")  # after the data line: one line
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--preset", "fast", "--no-progress")
    assert result.code != 0 and "leave --preset out" in result.err
    assert (run / "config.json").read_bytes() == before  # neither refusal rewrote the run


def test_a_resume_with_nothing_to_train_says_why(gentk_cli, tmp_path, tiny_data):
    from conftest import TINY_TRAIN

    run = tmp_path / "r"
    assert gentk_cli("train", "vae", "--max-steps", "4", "--epochs", "3", "--data", tiny_data, "--run-dir", run,
                     *TINY_TRAIN).code == 0
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--epochs", "5", "--no-progress")
    err = " ".join(result.err.split())
    assert result.code == 0 and "nothing to train: the run has trained 4 of its 4 planned steps" in err
    assert "--max-steps 4 caps --epochs 5: give a larger --max-steps" in err and "(0 this session)" in err
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--max-steps", "6", "--no-progress")
    assert result.code == 0 and "nothing to train" not in result.err and "(2 this session)" in result.err
    # The time is the run's over both sessions, and what this one added beside it.
    assert re.search(r"in [0-9.]+ s \([0-9.]+ s this session\)", " ".join(result.err.split()))
    # --max-steps equal to what the epochs give: raising --epochs alone would not do, so both are named.
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--epochs", "1", "--max-steps", "6",
                       "--no-progress")
    assert "give a larger --epochs and --max-steps" in " ".join(result.err.split())
    # --epochs the limit: a larger --max-steps alone does not do, and the note says --epochs ends it.
    result = gentk_cli("train", "vae", "--run-dir", run, "--resume", "--epochs", "1", "--max-steps", "100",
                       "--no-progress")
    assert "--epochs 1 ends it: give a larger --epochs" in " ".join(result.err.split())
    # Cutting --epochs below what the run trained is the plan refusal, not a checkpoint complaint.
    two = tmp_path / "two"  # 13 steps: into its third epoch of 6
    assert gentk_cli("train", "vae", "--max-steps", "13", "--epochs", "3", "--data", tiny_data, "--run-dir", two,
                     *TINY_TRAIN).code == 0
    result = gentk_cli("train", "vae", "--run-dir", two, "--resume", "--epochs", "1", "--no-progress")
    assert result.code != 0 and "has trained 13 steps, more than the 6 planned now" in " ".join(result.err.split())
    # A --max-steps beyond what the epochs give: said before training, not found out from the step count after.
    result = gentk_cli("train", "vae", "--max-steps", "20", "--epochs", "1", "--data", tiny_data,
                       "--run-dir", tmp_path / "short", *TINY_TRAIN)
    assert result.code == 0 and "--epochs 1 ends the run at step 6, before --max-steps 20" in " ".join(result.err.split())


@pytest.mark.parametrize("text, expected", [
    ('preset = ["fast"]', "preset ['fast'] is not one of vae's presets (fast, recon)"),
    ('preset = {a = 1}', "is not one of vae's presets (fast, recon)"),
    ('lr_schedule = "linear"', '--lr-schedule must be one of constant, cosine (got "linear")'),
])
def test_config_file_preset_and_choice_values(gentk_cli, tmp_path, tiny_data, text, expected):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    result = gentk_cli("train", "vae", "--config", path, "--data", tiny_data, "--run-dir", tmp_path / "r",
                       "--max-steps", "1", "--no-progress")
    assert result.code != 0 and expected in result.err and "Traceback" not in result.err, result.err
    assert str(path) in result.err
