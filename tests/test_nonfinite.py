"""NaN/inf losses: stop at the first one with step, phase and loss named, or skip such steps."""

import json

import torch

import gentk
from gentk.plugins import register_plugin, unregister_plugin
from gentk_vae import VAEModel

from conftest import TINY_TRAIN


class _NanAtStep3:
    @gentk.hookimpl
    def compute_loss(self, model, phase, batch, state):
        if type(model) is VAEModel and state.step == 2:  # the third step
            recon, kl = model.losses(batch.images)
            return {"loss": recon * float("nan"), "recon": recon, "kl": kl}


def _run(gentk_cli, run, tiny_data, *extra):
    register_plugin(_NanAtStep3(), "nan-maker")
    try:
        return gentk_cli("train", "vae", "--max-steps", "5", "--checkpoint-every", "1", "--data", tiny_data,
                         "--run-dir", run, *TINY_TRAIN, *extra)
    finally:
        unregister_plugin("nan-maker")


def test_nan_stops_with_step_phase_and_loss_named(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    result = _run(gentk_cli, run, tiny_data)
    assert result.code == 1
    assert "step 3, phase 'vae': loss is nan" in result.err and "--on-nan skip" in result.err
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # nothing after the last good step


def test_nan_skip_counts_and_continues(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "r"
    result = _run(gentk_cli, run, tiny_data, "--on-nan", "skip")
    assert result.code == 0, result
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[2]["skipped_nonfinite"] == 1 and "loss" not in rows[2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows if "loss" in r)
    sidecar = json.loads((run / "checkpoints" / "step-00000005.json").read_text())
    assert sidecar["state"]["skipped_nonfinite"] == 1
