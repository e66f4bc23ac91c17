"""Watching and repeating runs: TensorBoard, --config files, re-runs from a run, `gentk runs`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gentk.engine import train

from conftest import TINY_TRAIN, metric_rows, one_line_error, python_gentk

TINY = dict(batch_size=8, device="cpu", eval_limit=16, progress=False)


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_holds_every_metric_and_the_grids(tmp_path, tiny_data):
    pytest.importorskip("tensorboard")
    run = tmp_path / "r"
    train("vae", run, max_steps=20, epochs=10, sample_every=10, logger=["tensorboard"], data=tiny_data, **TINY)
    acc = _events(run)
    tags = set(acc.Tags()["scalars"])
    rows = metric_rows(run)
    for row in rows:
        prefix = "" if "split" not in row else f"{row['split']}/"
        for key, value in row.items():
            if key in ("step", "epoch", "split"):
                continue
            tag = prefix + key
            assert tag in tags, tag
            logged = {e.step: e.value for e in acc.Scalars(tag)}
            assert logged[row["step"]] == pytest.approx(value, rel=1e-6, abs=1e-30), tag
    assert {"samples", "reconstructions"} <= set(acc.Tags()["images"])
    assert [e.step for e in acc.Images("samples")] == [0, 10, 20]
    assert "config/text_summary" in acc.Tags()["tensors"]


def test_a_resumed_run_continues_the_curves_without_duplicated_steps(tmp_path, tiny_data):
    pytest.importorskip("tensorboard")
    run = tmp_path / "r"
    train("gan", run, max_steps=10, epochs=10, checkpoint_every=5, logger=["tensorboard"], data=tiny_data, **TINY)
    for p in (run / "checkpoints").glob("step-00000010.*"):  # as if killed after step 10, before its checkpoint
        p.unlink()
    train("gan", run, resume=True, max_steps=20, progress=False)
    acc = _events(run)
    steps = [e.step for e in acc.Scalars("generator_loss")]
    assert steps == list(range(1, 21))
    logged = {e.step: e.value for e in acc.Scalars("generator_loss")}
    assert all(logged[r["step"]] == pytest.approx(r["generator_loss"], rel=1e-6)
               for r in metric_rows(run) if "split" not in r)


def test_missing_tensorboard_is_one_line_saying_what_to_install(gentk_cli, tmp_path, tiny_data, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = gentk_cli("train", "gan", "--max-steps", "2", "--logger", "tensorboard", "--data", tiny_data,
                       "--run-dir", tmp_path / "r", *TINY_TRAIN)
    assert result.code == 2 and "pip install 'gentk[tensorboard]'" in result.err
    assert "Traceback" not in result.err
    assert one_line_error(gentk_cli("train", "gan", "--logger", "wandb", "--data", tiny_data, "--run-dir",
                                    tmp_path / "u"), 2).startswith("Error: unknown --logger 'wandb'")


# -- --config ------------------------------------------------------------------------------------

def test_config_from_toml_with_a_flag_overriding_it(gentk_cli, tmp_path, tiny_data):
    (tmp_path / "c.toml").write_text(f'batch_size = 4\nmax_steps = 3\ndata = "{tiny_data}"\n'
                                     'device = "cpu"\n[options]\ndim_z = 6\nbeta = 2.0\n')
    result = gentk_cli("train", "vae", "--config", tmp_path / "c.toml", "--beta", "3.5", "--run-dir",
                       tmp_path / "r", "--no-progress")
    assert result.code == 0, result
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["batch_size"] == 4 and config["max_steps"] == 3
    assert config["options"] == {"dim_z": 6, "beta": 3.5, "width": 1, "image_size": 64, "channels": 1}  # the flag won over the file


@pytest.mark.parametrize("text, expected", [
    ("batch_sise = 4\n", "unknown key 'batch_sise'"),
    ('batch_size = "4"\n', "--batch-size must be an integer"),
    ("dim_z = 0\n", "--dim-z must be at least 1"),
    ('model = "gan"\n', "is for model 'gan', not 'vae'"),
    ("[options\n", "is not valid TOML"),
    ('preset = "paper"\n', "preset 'paper' is not one of vae's presets (fast, recon)"),
])
def test_bad_config_files_are_refused_naming_the_key(gentk_cli, tmp_path, text, expected):
    (tmp_path / "c.toml").write_text(text)
    line = one_line_error(gentk_cli("train", "vae", "--config", tmp_path / "c.toml", "--run-dir", tmp_path / "r"), 2)
    assert expected in line, line
    assert not (tmp_path / "r").exists()


def test_a_run_repeated_from_its_config_json_is_bitwise_equal(gentk_cli, tmp_path, tiny_data):
    a, b = tmp_path / "a", tmp_path / "b"
    assert gentk_cli("train", "gan", "--max-steps", "6", "--noise-dim", "32", "--seed", "3", "--data", tiny_data,
                     "--run-dir", a, *TINY_TRAIN).code == 0
    assert gentk_cli("train", "gan", "--config", a / "config.json", "--run-dir", b, "--no-progress").code == 0
    ta = load_file(a / "checkpoints" / "step-00000006.safetensors")
    tb = load_file(b / "checkpoints" / "step-00000006.safetensors")
    keys = [k for k in ta if k.startswith(("model/", "optim/"))]
    assert keys and all(torch.equal(ta[k], tb[k]) for k in keys)
    assert metric_rows(a) == metric_rows(b)


# -- gentk runs ----------------------------------------------------------------------------------

def test_runs_tells_finished_interrupted_crashed_and_running_apart(gentk_cli, tmp_path, tiny_data):
    runs = tmp_path / "runs"
    env = dict(os.environ, GENTK_OFFLINE="1")
    base = ["train", "vae", "--data", tiny_data, "--checkpoint-every", "1", *TINY_TRAIN]
    assert gentk_cli(*base, "--max-steps", "2", "--run-dir", runs / "finished").code == 0

    def started(name, steps="100000"):
        proc = subprocess.Popen(python_gentk() + base + ["--max-steps", steps, "--epochs", "100000",
                                                          "--run-dir", str(runs / name)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list((runs / name / "checkpoints").glob("step-00000002.json")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        return proc

    interrupted = started("interrupted")
    interrupted.send_signal(signal.SIGINT)
    assert interrupted.wait(60) == 130
    crashed = started("crashed")
    crashed.kill()
    crashed.wait(60)
    running = started("running")
    try:
        result = gentk_cli("runs", runs, "--json")
    finally:
        running.kill()
        running.wait(60)
    assert result.code == 0, result
    rows = {Path(r["run"]).name: r for r in json.loads(result.out)}
    assert {name: r["state"] for name, r in rows.items()} == {
        "finished": "finished", "interrupted": "interrupted", "crashed": "crashed", "running": "running"}
    assert rows["finished"]["steps"] == 2 and rows["finished"]["planned_steps"] == 2
    assert rows["crashed"]["checkpoint"].startswith("step-") and rows["running"]["model"] == "vae"
    table = gentk_cli("runs", runs)
    assert table.code == 0 and "interrupted" in table.out and "crashed" in table.out


def test_runs_of_a_missing_folder_is_one_line(gentk_cli, tmp_path):
    assert "does not exist" in one_line_error(gentk_cli("runs", tmp_path / "nothing"), 1)
    (tmp_path / "empty").mkdir()
    empty = gentk_cli("runs", tmp_path / "empty")
    assert empty.code == 0 and "no runs in" in empty.err


def test_a_run_that_trained_then_failed_is_kept_and_listed_as_failed(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "runs" / "nan"
    result = gentk_cli("train", "vae", "--lr", "1e10", "--max-steps", "30", "--data", tiny_data, "--run-dir", run,
                       *TINY_TRAIN)
    assert result.code == 1 and "No checkpoint was written yet" in result.err
    row, = json.loads(gentk_cli("runs", tmp_path / "runs", "--json").out)
    assert row["state"] == "failed" and any("loss is nan" in n for n in row["notes"])
    # gentk report says so too: the state beside the steps, and the error as a warning naming the run.
    report = gentk_cli("report", run, "--no-plots")
    assert report.code == 0 and f"warning: {run}: failed: NonFiniteLoss" in report.err.replace("\n", "")
    assert "failed" in report.out
    row, = json.loads(gentk_cli("report", run, "--no-plots", "--json").out)
    assert (row["state"], row["planned_steps"]) == ("failed", 30)


def test_resuming_a_run_as_another_model_names_its_model(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "g"
    assert gentk_cli("train", "gan", "--max-steps", "2", "--data", tiny_data, "--run-dir", run, *TINY_TRAIN).code == 0
    line = one_line_error(gentk_cli("train", "vae", "--run-dir", run, "--resume"), 2)
    assert "is a gan run: resume it with gentk train gan" in line
