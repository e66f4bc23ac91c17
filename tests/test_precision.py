"""--precision bf16/fp16 and --compile: they train, and resume stays exact."""

from __future__ import annotations

import json
import subprocess

import torch

from conftest import TINY_TRAIN, metric_rows, python_gentk
from gentk.engine import train
from test_train import assert_bitwise_equal, final_tensors

TINY = dict(batch_size=8, device="cpu", eval_limit=16, checkpoint_every=1000)


def test_fp16_resume_is_bitwise_exact_and_keeps_the_loss_scale(tmp_path, tiny_data):
    train("gan", tmp_path / "straight", max_steps=6, epochs=10, data=tiny_data, precision="fp16", progress=False,
          **TINY)
    train("gan", tmp_path / "split", max_steps=3, epochs=10, data=tiny_data, precision="fp16", progress=False, **TINY)
    train("gan", tmp_path / "split", resume=True, max_steps=6, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "split"))
    assert metric_rows(tmp_path / "straight") == metric_rows(tmp_path / "split")
    meta = json.loads((tmp_path / "split" / "checkpoints" / "step-00000006.json").read_text())
    scales = meta["precision"]
    assert set(scales) == {"discriminator", "generator"}
    assert all(s["scale"] > 0 for s in scales.values())


def test_bf16_trains_close_to_fp32(tmp_path, tiny_data):
    fp32 = train("vae", tmp_path / "fp32", max_steps=5, data=tiny_data, progress=False, **TINY)
    bf16 = train("vae", tmp_path / "bf16", max_steps=5, data=tiny_data, precision="bf16", progress=False, **TINY)
    a, b = fp32["last"]["loss"], bf16["last"]["loss"]
    assert b == b and abs(a - b) < 0.02 * abs(a), (a, b)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["precision"] == "bf16"


def test_compile_trains_like_eager_and_resumes(tmp_path, tiny_data):
    """torch.compile'd networks: the same numbers as eager (to rounding), and --resume works."""
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train("vae", eager, max_steps=4, data=tiny_data, progress=False, **TINY)
    args = ["train", "vae", "--data", tiny_data, "--run-dir", str(compiled), "--compile", *TINY_TRAIN]
    first = subprocess.run(python_gentk() + args + ["--max-steps", "2"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(python_gentk() + ["train", "vae", "--run-dir", str(compiled), "--resume", "--no-progress",
                                              "--max-steps", "4"], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads((compiled / "config.json").read_text())["compile"] is True
    a, b = final_tensors(eager), final_tensors(compiled)
    keys = [k for k in a if k.startswith("model/")]
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in keys)
    assert worst < 1e-4, worst
    assert torch.isfinite(torch.tensor([r["loss"] for r in metric_rows(compiled) if "split" not in r])).all()


def test_compile_mode_reaches_torch_compile_and_the_run_config(tmp_path, tiny_data, monkeypatch):
    """--compile-mode is handed to each network's compile() and kept in config.json (compile itself
    is stubbed here: the test above runs the real thing; this one checks the plumbing quickly)."""
    modes = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: modes.append(kw.get("mode")))
    train("gan", tmp_path / "run", max_steps=2, data=tiny_data, compile=True, compile_mode="reduce-overhead",
          progress=False, **TINY)
    assert modes == ["reduce-overhead", "reduce-overhead"]  # generator and discriminator
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["compile"], config["compile_mode"]) == (True, "reduce-overhead")


def test_unknown_compile_mode_is_one_clear_line(tmp_path, tiny_data):
    proc = subprocess.run(python_gentk() + ["train", "gan", "--data", tiny_data, "--run-dir", str(tmp_path / "run"),
                                            "--compile", "--compile-mode", "fastest", *TINY_TRAIN],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'fastest' is not one of" in proc.stderr
    assert not (tmp_path / "run").exists()
    # A mode without --compile would do nothing: refused, with what to do.
    proc = subprocess.run(python_gentk() + ["train", "gan", "--data", tiny_data, "--run-dir", str(tmp_path / "run"),
                                            "--compile-mode", "reduce-overhead", *TINY_TRAIN],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "works only with --compile" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
