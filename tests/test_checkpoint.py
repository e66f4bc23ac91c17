"""Checkpoints: atomic files, verification, fallback to the newest intact one, optimizer round trip."""

import json

import pytest
import torch

from gentk.checkpoint import (latest_intact, list_checkpoints, optimizer_from_tensors, optimizer_to_tensors,
                              read_checkpoint, save_checkpoint)
from gentk.engine import train
from gentk.errors import CheckpointError


def _save(folder, step, keep=3):
    return save_checkpoint(folder, step, {"w": torch.full((3,), float(step))},
                           {"state": {"step": step, "epoch": 0, "beta": 1.0}}, keep=keep)


def test_save_read_and_prune(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, keep=2)
    assert list_checkpoints(tmp_path) == ["step-00000004", "step-00000003"]
    assert (tmp_path / "latest").read_text().strip() == "step-00000004"
    ckpt = read_checkpoint(tmp_path, "step-00000004")
    assert torch.equal(ckpt.tensors["w"], torch.full((3,), 4.0)) and ckpt.meta["step"] == 4
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_damaged_newest_falls_back_to_older(tmp_path, damage):
    _save(tmp_path, 1)
    path = _save(tmp_path, 2)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        path.write_bytes(bytes(raw))
    else:
        path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="step-00000002"):
        read_checkpoint(tmp_path, "step-00000002")
    ckpt, notes = latest_intact(tmp_path)
    assert ckpt.name == "step-00000001"
    assert len(notes) == 1 and "step-00000002" in notes[0]


def test_checkpoint_without_sidecar_is_ignored(tmp_path):
    _save(tmp_path, 1)
    path = _save(tmp_path, 2)
    path.with_suffix(".json").unlink()  # killed between the two writes
    assert latest_intact(tmp_path)[0].name == "step-00000001"


def test_bad_checkpoint_name_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint name"):
        read_checkpoint(tmp_path, "../../etc/passwd")


def test_optimizer_state_round_trip():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_tensors("optim/x", opt)
    meta = json.loads(json.dumps(meta))
    fresh = torch.optim.Adam(net.parameters(), lr=1.0)
    optimizer_from_tensors("optim/x", fresh, tensors, meta)
    assert fresh.param_groups[0]["lr"] == 1e-3 and fresh.param_groups[0]["betas"] == (0.5, 0.9)
    a, b = opt.state_dict()["state"], fresh.state_dict()["state"]
    for idx in a:
        for key in a[idx]:
            assert torch.equal(torch.as_tensor(a[idx][key]), torch.as_tensor(b[idx][key]))


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, tiny_data):
    run = tmp_path / "r"
    train("vae", run, max_steps=4, checkpoint_every=2, batch_size=8, data=tiny_data, device="cpu",
          progress=False)
    newest = run / "checkpoints" / "step-00000004.safetensors"
    newest.write_bytes(newest.read_bytes()[:-10])
    from rich.console import Console
    import io

    buf = io.StringIO()
    summary = train("vae", run, resume=True, max_steps=6, progress=False, console=Console(file=buf))
    assert summary["steps"] == 6
    assert "skipped damaged checkpoint" in buf.getvalue() and "resumed from step-00000002" in buf.getvalue()
