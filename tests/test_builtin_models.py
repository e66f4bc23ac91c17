"""Every built-in model: seed parameter counts, a short run writes a full run dir, resume is exact."""

import json

import pytest

from gentk.engine import train
from gentk.errors import ConfigMismatchError

from conftest import metric_rows
from test_train import assert_bitwise_equal, final_tensors

PARAMETERS = {
    "vae": {"encoder": 448_724, "decoder": 380_353},
    "controlvae": {"encoder": 448_724, "decoder": 380_353},
    "gan": {"generator": 1_654_121, "discriminator": 1_640_033},
    "wgan": {"generator": 1_654_121, "discriminator": 1_640_033},
    "ssgan": {"generator": 4_074_753, "discriminator": 1_084_805},
}

# Tiny settings per model so a CPU test runs in seconds.
TINY = {
    "vae": dict(batch_size=8),
    "controlvae": dict(batch_size=8),
    "gan": dict(batch_size=8),
    "wgan": dict(batch_size=8, n_critic=3),
    "ssgan": dict(batch_size=2, data_fraction=1.0),
}


@pytest.mark.parametrize("model", sorted(PARAMETERS))
def test_parameter_counts_match_the_seed(gentk_cli, model):
    info = json.loads(gentk_cli("models", model, "--json").out)
    assert {k: v["parameters"] for k, v in info["networks"].items()} == PARAMETERS[model]


@pytest.mark.parametrize("model", sorted(TINY))
def test_short_run_and_exact_resume(model, tmp_path, tiny_data):
    common = dict(data=tiny_data, device="cpu", progress=False, eval_limit=8, epochs=100, **TINY[model])
    steps = 6 if model == "ssgan" else 10
    train(model, tmp_path / "straight", max_steps=steps, **common)
    train(model, tmp_path / "split", max_steps=steps // 2, **common)
    train(model, tmp_path / "split", resume=True, max_steps=steps, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "split"))
    run = tmp_path / "straight"
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "split" not in r] == list(range(1, steps + 1))
    assert (run / "samples" / f"samples-{steps:08d}.png").is_file()
    assert (run / "plots" / "losses.png").is_file() and (run / "plots" / "samples.png").is_file()
    assert (run / "plots" / "kl_beta.png").is_file() == (model == "controlvae")
    assert metric_rows(run) == metric_rows(tmp_path / "split")


@pytest.mark.parametrize("model", ["vae", "controlvae"])
def test_vae_width_doubles_each_strided_convolution(model, tmp_path, tiny_data):
    run = tmp_path / "wide"
    train(model, run, width=2, max_steps=2, data=tiny_data, device="cpu", progress=False, eval_limit=8,
          epochs=100, batch_size=8)
    tensors = final_tensors(run)
    # The seed's 32, 32, 64, 64 channels, doubled; the 4x4 convolution to the 256-vector is kept.
    assert [tensors[f"model/encoder.conv.{i}.weight"].shape[0] for i in (0, 2, 4, 6, 8)] == [64, 64, 128, 128, 256]
    assert tensors["model/decoder.conv.1.weight"].shape[:2] == (256, 128)
    params = sum(v.numel() for k, v in tensors.items() if k.startswith("model/"))
    assert params == 1_055_636 + 987_265
    assert json.loads((run / "config.json").read_text())["options"]["width"] == 2


def test_vae_run_written_before_width_existed_resumes_as_width_1(tmp_path, tiny_data):
    common = dict(data=tiny_data, device="cpu", progress=False, eval_limit=8, epochs=100, batch_size=8)
    train("vae", tmp_path / "straight", max_steps=4, **common)
    old = tmp_path / "old"
    train("vae", old, max_steps=2, **common)
    config = json.loads((old / "config.json").read_text())
    del config["options"]["width"]  # as runs written before --width existed
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigMismatchError, match=r"--width \(run: 1, now: 2\)"):
        train("vae", old, resume=True, max_steps=4, progress=False, width=2)
    train("vae", old, resume=True, max_steps=4, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(old))
