"""Disk full and unwritable run directories: the error names the path, earlier checkpoints stay intact."""

import errno

import pytest

from gentk import fsutil
from gentk.checkpoint import latest_intact
from gentk.engine import train
from gentk.errors import RunDirError

from conftest import TINY_TRAIN


class _FullDisk:
    """Files opened for writing fail with ENOSPC once ``budget`` opens have passed."""

    def __init__(self, real_fdopen, budget):
        self.real_fdopen, self.budget = real_fdopen, budget

    def __call__(self, fd, mode="r", *args, **kwargs):
        fh = self.real_fdopen(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return fh
        self.budget -= 1
        if self.budget >= 0:
            return fh
        real_write = fh.write

        def write(data):
            real_write(data[: len(data) // 2])  # half of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        fh.write = write
        return fh


def test_disk_full_during_a_checkpoint(monkeypatch, tmp_path, tiny_data):
    run = tmp_path / "r"
    train("vae", run, max_steps=2, checkpoint_every=1, batch_size=8, data=tiny_data, device="cpu", progress=False)
    # Resume for more steps; the first checkpoint write after that hits a full disk.
    monkeypatch.setattr(fsutil.os, "fdopen", _FullDisk(fsutil.os.fdopen, budget=2))  # config.json, metrics
    with pytest.raises(RunDirError) as info:
        train("vae", run, resume=True, max_steps=4, progress=False)
    monkeypatch.undo()
    message = str(info.value)
    assert str(run / "checkpoints") in message and "No space left on device" in message
    ckpt, notes = latest_intact(run / "checkpoints")
    assert ckpt.name == "step-00000002" and notes == []
    assert not list((run / "checkpoints").glob("*.tmp"))  # no half-written temp files left behind
    assert train("vae", run, resume=True, max_steps=4, progress=False)["steps"] == 4


def test_run_dir_that_cannot_be_created(gentk_cli, tmp_path, tiny_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = gentk_cli("train", "vae", "--max-steps", "1", "--data", tiny_data, "--run-dir", blocker / "run",
                       *TINY_TRAIN)
    assert result.code == 1
    assert str(blocker / "run") in result.err and "Traceback" not in result.err
    assert blocker.read_text() == "not a folder"
