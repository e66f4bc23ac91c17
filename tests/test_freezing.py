"""A phase does not compute gradients for the networks it does not train (issue 18, part 2)."""

from pathlib import Path

import pytest
import torch

import gentk
import gentk.engine.loop as loop
from gentk import Phase
from gentk.testing import registered, train_steps
from test_train import final_tensors


class _GradWatcher:
    """Copies the discriminator's gradients after its own phase, and compares them after the
    generator's phase: a generator step that computed them would have added to them."""

    def __init__(self):
        self.after_d: list[torch.Tensor] | None = None
        self.generator_steps = 0
        self.changed = 0
        self.g_trainable_during_d: list[bool] = []
        self.d_trainable: list[tuple[str, bool]] = []

    @gentk.hookimpl
    def on_step(self, model, phase, state, metrics):
        d = [p.grad for p in model.discriminator.parameters()]
        self.d_trainable.append((phase, all(p.requires_grad for p in model.discriminator.parameters())))
        if phase in ("discriminator", "critic"):
            self.after_d = [g.clone() for g in d]
            self.g_trainable_during_d.append(any(p.requires_grad for p in model.generator.parameters()))
        elif phase == "generator" and self.after_d is not None:
            self.generator_steps += 1
            self.changed += any(not torch.equal(a, b) for a, b in zip(self.after_d, d))


@pytest.mark.parametrize("model", ["gan", "wgan"])
def test_generator_steps_leave_the_discriminator_gradients_alone(tmp_path, model):
    watcher = _GradWatcher()
    settings = {"n_critic": 2} if model == "wgan" else {}
    with registered(watcher, "grad-watcher"):
        train_steps(model, tmp_path, steps=3, **settings)
    assert watcher.generator_steps == 3 and watcher.changed == 0
    assert watcher.g_trainable_during_d and not any(watcher.g_trainable_during_d)
    # Frozen in the generator's phase, trainable again in the discriminator's next one.
    assert {trainable for phase, trainable in watcher.d_trainable if phase == "generator"} == {False}
    assert {trainable for phase, trainable in watcher.d_trainable if phase != "generator"} == {True}


def test_without_freezing_the_generator_step_does_touch_them(tmp_path, monkeypatch):
    """The watcher above can fail: with freezing switched off it sees the discriminator's gradients grow."""
    monkeypatch.setattr(loop, "frozen_parameters", lambda model, phases, params: {p.name: [] for p in phases})
    watcher = _GradWatcher()
    with registered(watcher, "grad-watcher"):
        train_steps("gan", tmp_path, steps=2)
    assert watcher.generator_steps == 2 and watcher.changed == 2


@pytest.mark.parametrize("model, settings", [("gan", {}), ("wgan", {"n_critic": 2}), ("ssgan", {"batch_size": 4})])
def test_freezing_changes_no_weight(tmp_path, monkeypatch, model, settings):
    """Bitwise on the CPU (benchmarks/freeze_check.py: 50 steps of each, on MNIST)."""
    steps = 3 if model == "ssgan" else 6
    frozen = final_tensors(Path(train_steps(model, tmp_path / "frozen", steps=steps, **settings)["run_dir"]))
    monkeypatch.setattr(loop, "frozen_parameters", lambda model, phases, params: {p.name: [] for p in phases})
    plain = final_tensors(Path(train_steps(model, tmp_path / "plain", steps=steps, **settings)["run_dir"]))
    keys = [k for k in frozen if k.startswith(("model/", "optim/"))]
    assert keys and keys == [k for k in plain if k.startswith(("model/", "optim/"))]
    assert all(torch.equal(frozen[k], plain[k]) for k in keys)


def test_a_phase_can_keep_the_other_networks_gradients():
    net_a, net_b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model = torch.nn.ModuleDict({"a": net_a, "b": net_b})
    phases = [Phase("a", ["a"], None), Phase("b", ["b"], None, freeze_others=False)]
    params = {"a": list(net_a.parameters()), "b": list(net_b.parameters())}
    frozen = loop.frozen_parameters(model, phases, params)
    assert [id(q) for q in frozen["a"]] == [id(q) for q in net_b.parameters()] and frozen["b"] == []
    with pytest.raises(RuntimeError), loop.frozen(frozen["a"]):
        assert not any(q.requires_grad for q in net_b.parameters())
        raise RuntimeError("a failing phase")
    assert all(q.requires_grad for q in net_b.parameters())  # restored on errors too
