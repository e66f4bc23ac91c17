"""Tests of the example plugin, in-process, with gentk.testing (no install needed)."""

import json

import torch

import gentk
import gentk_hinge_gan
from gentk.testing import registered, train_steps


def test_trains_checkpoints_and_resumes_exactly(tmp_path):
    with registered(gentk_hinge_gan, "hinge-gan-test"):
        straight = train_steps("hinge-gan", tmp_path / "a", steps=6)
        train_steps("hinge-gan", tmp_path / "b", steps=3)
        gentk.train("hinge-gan", tmp_path / "b" / "run", resume=True, max_steps=6, progress=False)
        a = gentk.load_run(straight["run_dir"]).model.state_dict()
        b = gentk.load_run(tmp_path / "b" / "run").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(l) for l in open(f"{straight['run_dir']}/metrics.jsonl")]
    assert {"discriminator_loss", "generator_loss"} <= set(rows[-1])


def test_samples_are_images_in_range(tmp_path):
    with registered(gentk_hinge_gan, "hinge-gan-test"):
        summary = train_steps("hinge-gan", tmp_path, steps=2, width=16)
        images = gentk.load_run(summary["run_dir"]).sample(4)
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    d = torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
    assert d.item() == 0.75  # only the scores inside the margin count
