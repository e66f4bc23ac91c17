"""Training end to end: run directory contents, exact resume, kill -9 and resume, sampling."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gentk.engine import train

from conftest import TINY_TRAIN, metric_rows, python_gentk

TINY = dict(batch_size=8, device="cpu", eval_limit=16)


def final_tensors(run):
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / f"{latest}.safetensors")


def assert_bitwise_equal(a: dict, b: dict, prefixes=("model/", "optim/")):
    keys = [k for k in a if k.startswith(prefixes)]
    assert keys and set(keys) == {k for k in b if k.startswith(prefixes)}
    for k in keys:
        assert torch.equal(a[k], b[k]), k


def test_train_writes_a_complete_run(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "run"
    result = gentk_cli("train", "vae", "--epochs", "2", "--max-steps", "20", "--data", tiny_data,
                       "--run-dir", run, "--batch-size", "4", "--device", "cpu", "--no-progress")
    assert result.code == 0, result
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "vae" and config["options"] == {"dim_z": 10, "beta": 1.0, "width": 1, "image_size": 64, "channels": 1}
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "split" not in r]
    assert [r["step"] for r in train_rows] == list(range(1, 21))
    assert all({"loss", "recon", "kl", "beta"} <= set(r) for r in train_rows)
    tensors = final_tensors(run)
    assert any(k.startswith("model/encoder.") for k in tensors)
    assert "rng/cpu" in tensors
    grid = run / "samples" / "samples-00000020.png"
    assert Image.open(grid).size[0] > 64
    assert (run / "samples" / "reconstructions-00000020.png").is_file()


def test_epoch_end_writes_held_out_metrics(tmp_path, tiny_data):
    run = tmp_path / "run"
    # 48 images / batch 8 = 6 steps per epoch: two epochs give two held-out rows.
    train("vae", run, epochs=2, data=tiny_data, progress=False, **TINY)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    held_out = [r for r in rows if r.get("split") == "test"]
    assert [r["step"] for r in held_out] == [6, 12]
    assert all(r["recon"] > 0 and r["kl"] >= 0 for r in held_out)


def test_same_seed_is_bitwise_reproducible(tmp_path, tiny_data):
    train("vae", tmp_path / "a", max_steps=6, data=tiny_data, progress=False, **TINY)
    train("vae", tmp_path / "b", max_steps=6, data=tiny_data, progress=False, **TINY)
    assert_bitwise_equal(final_tensors(tmp_path / "a"), final_tensors(tmp_path / "b"))


def test_resume_is_bitwise_exact(tmp_path, tiny_data):
    # 20 steps cross an epoch boundary (6 steps per epoch) and the held-out evaluation.
    train("vae", tmp_path / "straight", max_steps=20, epochs=10, data=tiny_data, progress=False, **TINY)
    train("vae", tmp_path / "split", max_steps=10, epochs=10, data=tiny_data, progress=False, **TINY)
    train("vae", tmp_path / "split", resume=True, max_steps=20, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "split"))
    assert metric_rows(tmp_path / "straight") == metric_rows(tmp_path / "split")


def test_kill_9_then_resume_matches_uninterrupted(tmp_path, tiny_data):
    args = ["train", "vae", "--max-steps", "20", "--epochs", "10", "--data", tiny_data,
            "--checkpoint-every", "2", *TINY_TRAIN]
    straight = tmp_path / "straight"
    subprocess.run(python_gentk() + args + ["--run-dir", str(straight)], check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(python_gentk() + args + ["--run-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    latest = killed / "checkpoints" / "latest"
    while time.time() < deadline:
        if latest.is_file() and latest.read_text().strip() >= "step-00000010":
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = latest.read_text().strip()
    assert "step-00000010" <= done < "step-00000020", done  # killed mid-run

    resumed = subprocess.run(python_gentk() + ["train", "vae", "--run-dir", str(killed), "--resume",
                                               "--no-progress"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_bitwise_equal(final_tensors(straight), final_tensors(killed))
    assert metric_rows(straight) == metric_rows(killed)


def test_resume_extends_a_finished_run(tmp_path, tiny_data):
    run = tmp_path / "r"
    train("vae", run, max_steps=4, data=tiny_data, progress=False, **TINY)
    summary = train("vae", run, resume=True, max_steps=7, progress=False)
    assert summary["steps"] == 7
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000007"


def test_sample_writes_pngs(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    train("vae", run, max_steps=2, data=tiny_data, progress=False, **TINY)
    result = gentk_cli("sample", run, "-n", "5", "-o", tmp_path / "out")
    assert result.code == 0, result
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == 5
    assert Image.open(files[0]).size == (64, 64)
    again = gentk_cli("sample", run, "-n", "5", "-o", tmp_path / "out")
    assert again.code == 2 and "already holds PNG files" in again.err


def test_sample_from_run_without_checkpoint(gentk_cli, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "vae", "options": {}}))
    result = gentk_cli("sample", run, "-n", "2", "-o", tmp_path / "o")
    assert result.code == 1 and "no intact checkpoint" in result.err


def test_second_process_on_same_run_is_refused(tmp_path, tiny_data):
    from gentk.errors import RunDirError
    from gentk.runs import RunDir

    holder = RunDir(tmp_path / "r")
    holder.lock()
    try:
        with pytest.raises(RunDirError, match=f"PID {os.getpid()}"):
            RunDir(tmp_path / "r").lock()
    finally:
        holder.unlock()


def test_sigint_checkpoints_and_exits_130(tmp_path, tiny_data):
    run = tmp_path / "r"
    proc = subprocess.Popen(python_gentk() + ["train", "vae", "--max-steps", "100000", "--epochs", "100000",
                                              "--data", tiny_data, "--run-dir", str(run), *TINY_TRAIN],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with: gentk train vae" in err
    step = int((run / "checkpoints" / "latest").read_text().strip().split("-")[1])
    assert step >= 10


def test_cosine_schedule_follows_the_curve_and_resumes_exactly(tmp_path, tiny_data, monkeypatch):
    import math

    common = dict(max_steps=20, epochs=10, data=tiny_data, progress=False, lr_schedule="cosine",
                  checkpoint_every=5, **TINY)
    train("gan", tmp_path / "straight", **common)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "split" not in r]
    # The step after s steps runs at lr * (1 + cos(pi s / 20)) / 2: the full rate first, near 0 last.
    for row in steps:
        expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * (row["step"] - 1) / 20))
        assert row["lr"] == pytest.approx(expected, rel=1e-12)
    assert steps[0]["lr"] == 1e-3 and steps[-1]["lr"] < 1e-5

    # A crash after the step-10 checkpoint: the resumed run must continue the same curve.
    from gentk.engine.loop import Trainer

    real_step = Trainer._step

    def crashing_step(self, model, phases, optimizers, state, *rest):
        if state.step == 12:
            raise RuntimeError("crash")
        return real_step(self, model, phases, optimizers, state, *rest)

    monkeypatch.setattr(Trainer, "_step", crashing_step)
    with pytest.raises(RuntimeError, match="crash"):
        train("gan", tmp_path / "split", **common)
    monkeypatch.setattr(Trainer, "_step", real_step)
    train("gan", tmp_path / "split", resume=True, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "split"))
    assert metric_rows(tmp_path / "straight") == metric_rows(tmp_path / "split")
    # A resume with another schedule is refused: it is part of what the run trains.
    with pytest.raises(Exception, match="--lr-schedule"):
        train("gan", tmp_path / "split", resume=True, progress=False, lr_schedule="constant", max_steps=30)
    # Extending it recomputes the curve for the new length: the resume says where the rate jumps to.
    import io

    from rich.console import Console

    buf = io.StringIO()
    train("gan", tmp_path / "split", resume=True, progress=False, max_steps=40, console=Console(file=buf, width=200))
    assert "cosine schedule now spans 40 steps (was 20): step 21 runs at 0.5 x --lr, where the old curve had 0" in buf.getvalue()
    buf = io.StringIO()
    train("gan", tmp_path / "split", resume=True, progress=False, max_steps=40, console=Console(file=buf, width=200))
    assert "schedule now spans" not in buf.getvalue()  # the same length: nothing to say
    # Nor when the resumed step is the end of the new plan (nothing runs), or the run had no checkpoint.
    train("gan", tmp_path / "early", max_steps=2, checkpoint_every=100, **{k: v for k, v in common.items()
                                                                           if k not in ("max_steps", "checkpoint_every")})
    for ckpt in (tmp_path / "early" / "checkpoints").iterdir():
        ckpt.unlink()  # as a run stopped before its first checkpoint leaves it
    buf = io.StringIO()
    train("gan", tmp_path / "early", resume=True, progress=False, max_steps=4, console=Console(file=buf, width=200))
    assert "no checkpoint yet" in buf.getvalue() and "schedule now spans" not in buf.getvalue()
