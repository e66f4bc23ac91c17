"""GAN-family specifics: WGAN clipping after every critic step, WGAN-GP, SSGAN rotations, EMA."""

import pytest
import torch
from conftest import one_line_error

import gentk
from gentk.engine import train
from gentk.plugins import register_plugin, unregister_plugin
from gentk_gan.model import GANPair
from gentk_ssgan import rotate_batch
from gentk_wgan import WGANModel, gradient_penalty


class _ClipWatcher:
    def __init__(self):
        self.checked = 0
        self.worst = 0.0

    @gentk.hookimpl  # runs after the model's own on_step (WGANModel.on_step clips)
    def on_step(self, model, phase, state, metrics):
        if isinstance(model, WGANModel) and phase == "critic":
            self.worst = max(self.worst, max(p.abs().max().item() for p in model.discriminator.parameters()))
            self.checked += 1


def test_wgan_critic_weights_within_clip_after_every_critic_step(tmp_path, tiny_data):
    watcher = _ClipWatcher()
    register_plugin(watcher, "clip-watcher")
    try:
        train("wgan", tmp_path / "r", max_steps=3, n_critic=4, clip=0.01, batch_size=8, data=tiny_data,
              device="cpu", progress=False, epochs=100)
    finally:
        unregister_plugin("clip-watcher")
    assert watcher.checked == 12
    assert watcher.worst <= 0.01


def test_wgan_gp_penalty_and_no_clipping(tmp_path, tiny_data):
    summary = train("wgan", tmp_path / "r", max_steps=2, n_critic=2, gradient_penalty=10.0, batch_size=8,
                    data=tiny_data, device="cpu", progress=False, epochs=100)
    assert "critic_gp" in summary["last"]
    critic = torch.nn.Linear(4, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0]]))  # gradient norm 5 everywhere
    gp = gradient_penalty(lambda x: critic(x.flatten(1)), torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2))
    assert gp.item() == pytest.approx(16.0)


def test_rotation_labels_match_the_rotations():
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)  # asymmetric images
    rotated, labels = rotate_batch(x)
    assert rotated.shape == (8, 1, 3, 3) and labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for row in range(8):
        image, quarter_turns = x[row // 4], labels[row].item()
        assert torch.equal(rotated[row], torch.rot90(image, quarter_turns, dims=(1, 2)))
    # 90 degrees counter-clockwise: the top-right pixel moves to the top-left.
    assert rotated[1, 0, 0, 0] == x[0, 0, 0, 2]


def test_ssgan_paper_preset(gentk_cli, tmp_path, tiny_data):
    result = gentk_cli("train", "ssgan", "--preset", "paper", "--max-steps", "1", "--batch-size", "2",
                       "--data", tiny_data, "--run-dir", tmp_path / "r", "--device", "cpu", "--no-progress")
    assert result.code == 0, result
    import json

    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["lr"] == 2e-4 and config["options"]["alpha"] == 1.0 and config["options"]["beta"] == 0.2
    assert config["options"]["d_rotation_on_fake"] is False
    result = gentk_cli("train", "ssgan", "--preset", "paper", "--alpha", "0.5", "--max-steps", "1",
                       "--batch-size", "2", "--data", tiny_data, "--run-dir", tmp_path / "r2", "--device", "cpu",
                       "--no-progress")
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["options"]["alpha"] == 0.5


def test_wgan_gp_preset_and_its_help(gentk_cli, tmp_path, tiny_data):
    import json

    common = ("--max-steps", "1", "--batch-size", "2", "--data", tiny_data, "--device", "cpu", "--no-progress")
    assert gentk_cli("train", "wgan", "--preset", "gp", "--run-dir", tmp_path / "r", *common).code == 0
    options = json.loads((tmp_path / "r" / "config.json").read_text())["options"]
    assert options["gradient_penalty"] == 10.0 and options["n_critic"] == 5
    assert gentk_cli("train", "wgan", "--preset", "gp", "--n-critic", "3", "--run-dir", tmp_path / "r2",
                     *common).code == 0
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["options"]["n_critic"] == 3
    help_text = " ".join(gentk_cli("train", "wgan", "--help").out.split())
    assert "gp = --gradient-penalty 10 --n-critic 5." in help_text


def test_ssgan_pads_mnist_to_32():
    from gentk_ssgan import SSGANModel, SSGANOptions

    model = SSGANModel(SSGANOptions())
    assert model.fit == "pad" and model.image_size == 32
    logits, rotation = model.discriminator(torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 1) and rotation.shape == (2, 4)


@pytest.mark.parametrize("name", ["gan", "ssgan"])
def test_gan_ema_tracks_the_generator(tmp_path, tiny_data, name):
    summary = train(name, tmp_path / "r", max_steps=3, ema=0.5, batch_size=8, data=tiny_data, device="cpu",
                    progress=False, epochs=100)
    assert summary["steps"] == 3
    run = gentk.load_run(tmp_path / "r")
    model = run.model
    assert isinstance(model, GANPair) and model.generator_ema is not None
    # Samples come from the average, not the live generator.
    noise = model.noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.sample(noise), model.generator_ema(noise))
        assert not torch.equal(model.sample(noise), model.generator(noise))
    live = torch.cat([p.flatten() for p in model.generator.parameters()])
    avg = torch.cat([p.flatten() for p in model.generator_ema.parameters()])
    assert not torch.equal(live, avg) and (live - avg).abs().max() < 1.0


def test_gan_r1_penalty_is_the_gradient_norm_on_real_images(tmp_path, tiny_data):
    import json

    from gentk_gan import GANModel, GANOptions

    # The penalty the model computes is |grad_x D(x)|^2 per image, summed over pixels, mean over the batch.
    torch.manual_seed(0)
    model = GANModel(GANOptions(r1=4.0))
    real = torch.rand(5, 1, 28, 28) * 2 - 1
    batch = type("B", (), {"images": real})()
    out = model.compute_loss("discriminator", batch, state=None)
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(x).sum(), x)
    expected = grad.pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(out["r1_penalty"], expected, rtol=1e-5)
    # It trains D: with the penalty the first discriminator step moves D's weights differently.
    runs = {}
    for r1 in (0.0, 10.0):
        train("gan", tmp_path / f"r{r1}", max_steps=2, r1=r1, batch_size=8, data=tiny_data, device="cpu",
              progress=False, epochs=100)
        runs[r1] = gentk.load_run(tmp_path / f"r{r1}").model.discriminator
    rows = [json.loads(line) for line in (tmp_path / "r10.0" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["discriminator_r1_penalty"] > 0 for row in rows)
    assert not all(torch.equal(a, b) for a, b in zip(runs[0.0].parameters(), runs[10.0].parameters()))


def test_gan_quality_preset_sets_ema_cosine_and_r1_and_flags_still_win(gentk_cli, tmp_path, tiny_data):
    import json

    common = ("--max-steps", "2", "--batch-size", "8", "--data", tiny_data, "--device", "cpu", "--no-progress")
    assert gentk_cli("train", "gan", "--preset", "quality", "--run-dir", tmp_path / "q", *common).code == 0
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["options"]["ema"] == 0.999 and config["options"]["r1"] == 0.2
    assert config["lr_schedule"] == "cosine" and config["epochs"] == 10  # the seed's epochs are kept
    rows = [json.loads(line) for line in (tmp_path / "q" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["discriminator_r1_penalty"] > 0 for row in rows if "discriminator_loss" in row)
    assert gentk_cli("train", "gan", "--preset", "quality", "--r1", "0", "--run-dir", tmp_path / "q0", *common).code == 0
    assert json.loads((tmp_path / "q0" / "config.json").read_text())["options"]["r1"] == 0.0
    help_text = "".join(gentk_cli("train", "gan", "--help").out.split())
    assert "quality=--ema0.999--lr-schedulecosine--r10.2" in help_text
    # A resumed run keeps its settings: a preset from a --config file is refused, naming the file.
    (tmp_path / "c.toml").write_text('preset = "quality"\n')
    before = (tmp_path / "q" / "config.json").read_bytes()
    line = one_line_error(gentk_cli("train", "gan", "--run-dir", tmp_path / "q", "--resume", "--config",
                                    tmp_path / "c.toml", "--max-steps", "4"), 2)
    assert "c.toml: preset 'quality'" in line and "drop the preset from the file" in line
    assert (tmp_path / "q" / "config.json").read_bytes() == before
