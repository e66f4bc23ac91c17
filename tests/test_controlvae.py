"""The ControlVAE PI controller: the seed's formula where nothing saturates, no latching, no wind-up."""

import json

import numpy as np
import pytest

from gentk.engine import train
from gentk_controlvae import PIController


def seed_beta_calculator(desired_KL, KL_loss, Kp, Ki, beta, I, beta_max, beta_min):
    """The report's Beta_Calculator, verbatim."""
    e = desired_KL - KL_loss
    P = Kp / (1 + np.exp(e))
    if (beta > beta_min and beta <= beta_max):
        I_new = I - Ki * e
    else:
        I_new = I
    beta_new = P + I_new + beta_min
    if (beta_new > beta_max):
        beta_new = beta_max
    elif (beta_new < beta_min):
        beta_new = beta_min
    return beta_new, I_new


def test_matches_the_seed_formula_where_nothing_saturates():
    ctl = PIController(target_kl=14.0)
    rng = np.random.default_rng(0)
    beta, i_ours = 5.0, 4.0
    i_seed, beta_seed = i_ours, beta
    for _ in range(500):
        kl = float(rng.uniform(10, 18))
        beta, i_ours = ctl.step(kl, beta, i_ours)
        beta_seed, i_seed = seed_beta_calculator(14.0, kl, 0.01, 0.001, beta_seed, i_seed, 50.0, 1.0)
        assert 1.0 < beta < 50.0
        assert beta == pytest.approx(beta_seed, abs=1e-12) and i_ours == pytest.approx(i_seed, abs=1e-12)


def test_seed_rule_latches_but_conditional_integration_recovers():
    # Beta at beta_min with I <= -Kp: the seed's rule never integrates again.
    beta, integral = 1.0, -0.02
    seed = PIController(14.0, anti_windup="seed")
    ours = PIController(14.0)
    b_seed, i_seed, b_ours, i_ours = beta, integral, beta, integral
    for _ in range(2000):  # KL far above the target: beta should rise
        b_seed, i_seed = seed.step(30.0, b_seed, i_seed)
        b_ours, i_ours = ours.step(30.0, b_ours, i_ours)
    assert b_seed == 1.0 and i_seed == -0.02  # latched for good
    assert b_ours > 20.0  # recovered and rising


def test_no_windup_at_beta_max():
    ctl = PIController(14.0)
    beta, integral = 1.0, 0.0
    for _ in range(100_000):  # KL stuck far above target: beta pinned at beta_max
        beta, integral = ctl.step(100.0, beta, integral)
    assert beta == 50.0
    assert integral <= 50.0  # integrator frozen near saturation instead of growing to ~8600
    steps = 0
    while beta == 50.0 and steps < 10_000:  # KL drops below target: beta must leave the bound at once
        beta, integral = ctl.step(5.0, beta, integral)
        steps += 1
    assert steps <= 10


def test_seed_rule_winds_up_for_comparison():
    ctl = PIController(14.0, anti_windup="seed")
    beta, integral = 2.0, 1.0
    for _ in range(10_000):
        beta, integral = ctl.step(100.0, beta, integral)
    assert integral > 800  # the flaw the default rule fixes


def test_error_clip_bounds_the_integrators_jump_on_a_kl_spike():
    # The spike a wide network showed at step 6 (KL 1,844 against 14): unclipped, Ki 0.02 takes
    # beta to ~37 in one step; clipped at 14 nats, the integral moves by at most Ki * 14.
    kl_spike = 1843.78
    unclipped = PIController(14.0, ki=0.02)
    clipped = PIController(14.0, ki=0.02, error_clip=14.0)
    assert unclipped.step(kl_spike, 1.0, 0.0)[0] > 30.0
    beta, integral = clipped.step(kl_spike, 1.0, 0.0)
    assert integral == pytest.approx(0.02 * 14.0) and beta < 1.3
    # Inside the clip it is the controller as before, both ways.
    for kl in (0.0, 5.0, 13.0, 20.0, 27.9):
        assert clipped.step(kl, 3.0, 2.0) == unclipped.step(kl, 3.0, 2.0)
    assert clipped.step(-100.0, 3.0, 2.0)[1] == pytest.approx(2.0 - 0.02 * 14.0)


def test_a_run_written_before_error_clip_existed_refuses_a_clip_on_resume(tmp_path, tiny_data):
    from gentk.errors import ConfigMismatchError

    old = tmp_path / "old"
    train("controlvae", old, max_steps=2, data=tiny_data, device="cpu", progress=False, batch_size=8, eval_limit=8,
          epochs=100)
    config = json.loads((old / "config.json").read_text())
    del config["options"]["error_clip"]  # as runs written before --error-clip existed
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigMismatchError, match=r"--error-clip \(run: none, now: 2.0\)"):
        train("controlvae", old, resume=True, max_steps=4, progress=False, error_clip=2.0)
    assert train("controlvae", old, resume=True, max_steps=3, progress=False)["steps"] == 3


def test_extreme_errors_do_not_overflow():
    ctl = PIController(14.0)
    assert ctl.step(-1e6, 5.0, 4.0)[0] >= 1.0
    assert ctl.step(1e6, 5.0, 4.0)[0] <= 50.0


def test_controller_state_is_logged_and_resumed(tmp_path, tiny_data):
    common = dict(data=tiny_data, device="cpu", progress=False, batch_size=8, target_kl=2.0)
    train("controlvae", tmp_path / "r", max_steps=4, **common)
    rows = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all({"kl", "beta", "target_kl"} <= set(r) for r in rows if "split" not in r)
    latest = (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    sidecar = json.loads((tmp_path / "r" / "checkpoints" / f"{latest}.json").read_text())
    assert set(sidecar["state"]["extra"]["controller"]) == {"beta", "I"}
    assert sidecar["state"]["beta"] == rows[-1]["beta"]


@pytest.mark.parametrize("model, preset, expected", [
    ("vae", "fast", {"lr": 1e-3, "lr_schedule": "cosine", "epochs": 25}),
    ("vae", "recon", {"lr": 1e-3, "lr_schedule": "cosine", "epochs": 25, "width": 2, "dim_z": 32, "beta": 0.1,
                      "batch_size": 32}),
    ("controlvae", "fast", {"lr": 1e-3, "lr_schedule": "cosine", "epochs": 25, "ki": 0.02}),
    ("controlvae", "recon", {"lr": 1e-3, "lr_schedule": "cosine", "epochs": 25, "ki": 0.02, "width": 2,
                             "error_clip": 14.0, "batch_size": 20}),
])
def test_vae_presets_set_what_their_help_says(gentk_cli, tmp_path, tiny_data, model, preset, expected):
    common = ("--max-steps", "2", "--data", tiny_data, "--device", "cpu", "--no-progress", "--image-size", "32")
    if "batch_size" not in expected:  # the tiny data's 48 images: a preset's 32 or 20 fits, the default 64 does not
        common += ("--batch-size", "4")
    assert gentk_cli("train", model, "--preset", preset, "--run-dir", tmp_path / "r", *common).code == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    for key, value in expected.items():
        assert config["options"].get(key, config.get(key)) == value, key
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows if "lr" in r][:1] == [1e-3]  # the schedule is on (and logged)
    # An explicit setting still wins over the preset.
    assert gentk_cli("train", model, "--preset", preset, "--epochs", "3", "--lr-schedule", "constant",
                     "--run-dir", tmp_path / "r2", *common).code == 0
    config = json.loads((tmp_path / "r2" / "config.json").read_text())
    assert config["epochs"] == 3 and config["lr_schedule"] == "constant"
    help_text = "".join(gentk_cli("train", model, "--help").out.split())  # wrapped anywhere
    assert f"{preset}=--lr0.001--lr-schedulecosine" in help_text


def test_a_config_files_null_beats_the_presets_value(gentk_cli, tmp_path, tiny_data):
    """A run's config.json as --config holds "error_clip": null: that is a value (no clip), not "not given"."""
    common = ("--max-steps", "1", "--data", tiny_data, "--device", "cpu", "--no-progress", "--image-size", "32",
              "--batch-size", "4")
    assert gentk_cli("train", "controlvae", "--run-dir", tmp_path / "a", *common).code == 0
    assert gentk_cli("train", "controlvae", "--config", tmp_path / "a" / "config.json", "--preset", "recon",
                     "--run-dir", tmp_path / "b", *common).code == 0
    options = json.loads((tmp_path / "b" / "config.json").read_text())["options"]
    assert options["error_clip"] is None and options["width"] == 1  # both the file's, over the preset's 14 and 2
    # From Python, None is "not given" as for every setting: the preset's clip stands.
    from gentk.config import make_config
    from gentk.plugins import get_registry

    config = make_config(get_registry().spec("controlvae"), {"preset": "recon", "error_clip": None, "lr": None})
    assert config.options["error_clip"] == 14.0 and config.lr == 1e-3
