"""Reliability 2: every file gentk reads back is validated, nothing is written through a link,
every read is bounded, damage is named, options are checked at the edge, every write can fail
in one line. Each case is a row of docs/reliability.md."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gentk import fsutil
from gentk.engine import train

from conftest import TINY_TRAIN, last_line_error, make_image_folder, metric_rows, one_line_error, python_gentk


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data):
    """A 4-step GAN run (checkpoints at steps 2 and 4); tests change copies of it."""
    run = tmp_path_factory.mktemp("trained") / "gan"
    train("gan", run, max_steps=4, checkpoint_every=2, batch_size=8, data=tiny_data, device="cpu",
          progress=False, eval_limit=8)
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def sidecar(run: Path, step: int = 4) -> Path:
    return run / "checkpoints" / f"step-{step:08d}.json"


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def retensor(run: Path, change, step: int = 4) -> None:
    """Change the tensors of a checkpoint and fix its sidecar's size and sha256, as an attacker would."""
    weights = run / "checkpoints" / f"step-{step:08d}.safetensors"
    tensors = dict(st_load(weights.read_bytes()))
    change(tensors)
    payload = st_save(tensors)
    weights.write_bytes(payload)
    edit_json(sidecar(run, step), lambda m: m.update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest()))


def resume(gentk_cli, run: Path, *extra):
    return gentk_cli("train", "gan", "--run-dir", run, "--resume", "--max-steps", "6", "--no-progress", *extra)


def only_latest(run: Path) -> None:
    """Leave the newest checkpoint alone, so that a refused one cannot fall back to an older one."""
    for p in (run / "checkpoints").glob("step-00000002.*"):
        p.unlink()


# -- run files are validated, not trusted once their hash matches -------------------------------

def test_optimizer_state_of_the_wrong_shape_is_refused_not_a_crash(gentk_cli, run):
    only_latest(run)
    before = (run / "config.json").read_text()
    retensor(run, lambda t: t.update({k: torch.zeros(3) for k in t if k.startswith("optim/") and
                                      t[k].dim() > 0}))
    line = last_line_error(resume(gentk_cli, run), 1)
    assert "optim/" in line and "its parameter is" in line
    assert (run / "config.json").read_text() == before


@pytest.mark.parametrize("field, value, expected", [
    ("data.epoch", "0", "field data.epoch must be an integer"),
    ("data.cursor", -1, "field data.cursor must be at least 0"),
    ("state", None, "field state must be an object"),
    ("state.beta", "1", "field state.beta must be a number"),
    ("state.extra", [1], "field state.extra must be an object"),
    ("optimizers.discriminator.param_groups", {}, "must be a list"),
    ("step", 3, "says step 3, but its name says step-00000004"),
    ("size", -5, "field size must be at least 0"),
    ("sha256", "abc", "field sha256 is not of the form"),
    ("format", 2, "has checkpoint format 2; this gentk reads format 1"),
])
def test_sidecar_fields_are_checked(gentk_cli, run, field, value, expected):
    only_latest(run)

    def change(meta):
        *path, last = field.split(".")
        for key in path:
            meta = meta[key]
        meta[last] = value

    edit_json(sidecar(run), change)
    line = last_line_error(resume(gentk_cli, run), 1)
    assert expected in line, line


def test_a_sidecar_without_state_still_samples_but_does_not_resume(gentk_cli, run, tmp_path):
    only_latest(run)
    edit_json(sidecar(run), lambda m: m.pop("state"))
    assert gentk_cli("sample", run, "-n", "2", "-o", tmp_path / "out").code == 0
    line = last_line_error(resume(gentk_cli, run), 1)
    assert "field state is missing" in line


@pytest.mark.parametrize("change, expected", [
    (lambda t: t.pop(next(k for k in t if k.startswith("model/"))), "lacks"),
    (lambda t: t.update({"model/extra.weight": torch.zeros(2)}), "it has extra.weight, which the model does not"),
    (lambda t: t.update({k: t[k].double() for k in t if k.startswith("model/generator")}), "float64"),
    (lambda t: t.update({"model/generator.model.0.weight": torch.zeros(2, 2)}), "is torch.float32 (2, 2), the model's"),
    (lambda t: t.update({"optim/generator/99/exp_avg": torch.zeros(2)}), "names no parameter"),
    (lambda t: t.update({"rng/cpu": torch.zeros(7, dtype=torch.uint8)}), "rng/cpu is not an RNG state"),
    (lambda t: t.update({"rng/cpu": torch.zeros(5056, dtype=torch.float32)}), "rng/cpu is not an RNG state"),
])
def test_tensors_are_checked_against_the_model_before_loading(gentk_cli, run, change, expected):
    only_latest(run)
    retensor(run, change)
    line = last_line_error(resume(gentk_cli, run), 1)
    assert expected in line, line


def test_data_position_past_the_epoch_is_refused(gentk_cli, run):
    only_latest(run)
    edit_json(sidecar(run), lambda m: m["data"].update(cursor=10**6))
    assert "is past the" in last_line_error(resume(gentk_cli, run), 1)


@pytest.mark.parametrize("key, value, code, expected", [
    ("batch_size", "8", 1, "field batch_size must be an integer"),
    ("epochs", None, 1, "field epochs must be an integer"),
    ("model", ["gan"], 1, "field model must be a string"),
    ("lr", "fast", 1, "field lr must be a number"),
    ("options", [], 1, "field options must be an object"),
    ("options", {"noise_dim": [1]}, 1, "field options.noise_dim must be a number, string, boolean or null"),
    ("seed", 2**64, 1, "field seed must be at most"),
    ("seed", -3, 1, "--seed must be in 0 .."),
    ("compile", "yes", 1, "field compile must be true or false"),
    ("world_size", 0, 1, "field world_size must be at least 1"),
    ("plugins", "vae", 1, "field plugins must be a list"),
    ("keep_checkpoints", 0, 1, "--keep-checkpoints must be at least 1"),
    ("display", {"figures": {"x": "y"}}, 1, "field display.figures.x must be a list"),
    # Model options are checked against the model's own option types and ranges.
    ("options", {"noise_dim": "64", "adam_beta1": 0.5, "adam_beta2": 0.999, "ema": 0.0}, 2,
     "--noise-dim must be an integer"),
    ("options", {"noise_dim": 64, "adam_beta1": 0.5, "adam_beta2": 0.999, "ema": 3.0}, 2, "--ema must be below 1"),
])
def test_config_fields_are_checked_and_config_is_not_rewritten(gentk_cli, run, key, value, code, expected):
    edit_json(run / "config.json", lambda c: c.update({key: value}))
    before = (run / "config.json").read_bytes()
    line = one_line_error(resume(gentk_cli, run), code)
    assert expected in line, line
    if code == 1:
        assert "config.json" in line
    assert (run / "config.json").read_bytes() == before


def test_deeply_nested_config_is_one_line(gentk_cli, run, tmp_path):
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "nests too deeply" in one_line_error(gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o"), 1)


def test_huge_number_in_config_is_one_line(gentk_cli, run, tmp_path):
    (run / "config.json").write_text('{"model": "gan", "options": {}, "seed": ' + "9" * 5000 + "}")
    line = one_line_error(gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o"), 1)
    assert "config.json" in line


@pytest.mark.parametrize("bad_line", [b"[1, 2]", b'{"step": 3}', b'{"step": "x", "epoch": 0}', b"\xff\xfe{",
                                      b'{"step": 3, "epoch": 0, "loss": {"a": 1}}'])
def test_a_damaged_metrics_line_costs_only_itself_and_is_named(gentk_cli, run, bad_line):
    lines = (run / "metrics.jsonl").read_bytes().splitlines()
    lines.insert(1, bad_line)
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = resume(gentk_cli, run)
    assert result.code == 0, result
    assert "metrics.jsonl line 2 was damaged" in result.err
    assert (run / "metrics.jsonl.damaged").read_bytes() == bad_line + b"\n"
    steps = [r["step"] for r in metric_rows(run) if "split" not in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # every valid row after the damaged one kept


def test_report_survives_a_damaged_fid_json_and_metrics(gentk_cli, run):
    (run / "fid.json").write_text('{"scores": {"samples": "low"}}')
    with open(run / "metrics.jsonl", "ab") as fh:
        fh.write(b"not json\n")
    result = gentk_cli("report", run, "--json", "--no-plots")
    assert result.code == 0, result
    row, = json.loads(result.out)
    assert row["fid"] is None and "field scores.samples must be a number" in result.err
    assert "is damaged" in result.err


# -- no links followed out of a run ---------------------------------------------------------------

def test_a_lock_that_links_elsewhere_is_refused_and_the_target_untouched(gentk_cli, run, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    line = last_line_error(resume(gentk_cli, run), 1)
    assert ".lock is a symbolic link" in line
    assert victim.read_text() == "precious"


def test_checkpoints_that_link_to_another_run_are_never_pruned(gentk_cli, run, trained, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    before = sorted(p.name for p in (other / "checkpoints").iterdir())
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(other / "checkpoints")
    line = last_line_error(resume(gentk_cli, run, "--keep-checkpoints", "1"), 1)
    assert "checkpoints is a symbolic link" in line
    assert sorted(p.name for p in (other / "checkpoints").iterdir()) == before


def test_metrics_or_samples_that_link_out_are_refused(gentk_cli, run, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("keep\n")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(outside)
    assert "metrics.jsonl is a symbolic link" in last_line_error(resume(gentk_cli, run), 1)
    assert outside.read_text() == "keep\n"


# -- reads are bounded -------------------------------------------------------------------------------

def _with_timeout(fn, seconds=60):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return result["value"]


def test_a_fifo_sidecar_does_not_hang_sample(gentk_cli, run, tmp_path):
    only_latest(run)
    sidecar(run).unlink()
    os.mkfifo(sidecar(run))
    result = _with_timeout(lambda: gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o",
                                             "--checkpoint", "step-00000004"))
    assert "is a FIFO, not a checkpoint sidecar" in one_line_error(result, 1)


def test_a_sidecar_linked_to_dev_zero_is_not_read(gentk_cli, run, tmp_path):
    only_latest(run)
    sidecar(run).unlink()
    sidecar(run).symlink_to("/dev/zero")
    result = _with_timeout(lambda: gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o",
                                             "--checkpoint", "step-00000004"))
    assert "is a symbolic link" in one_line_error(result, 1)


def test_weights_linked_to_dev_zero_are_not_read(gentk_cli, run, tmp_path):
    only_latest(run)
    weights = run / "checkpoints" / "step-00000004.safetensors"
    weights.unlink()
    weights.symlink_to("/dev/zero")
    result = _with_timeout(lambda: gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o",
                                             "--checkpoint", "step-00000004"))
    assert "is a symbolic link" in one_line_error(result, 1)


def _npz_bomb(path: Path, declared=(6000, 6000), zeros=48 << 20) -> None:
    """sigma.npy whose zip entry inflates to ``zeros`` bytes of zeros (a few hundred KB on disk)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": declared})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mu.npy", _npy(np.zeros(declared[0])))
        with zf.open("sigma.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            block = bytes(1 << 20)
            for _ in range(zeros >> 20):
                member.write(block)


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_npz_members_are_checked_before_decompression(gentk_cli, tmp_path):
    _npz_bomb(tmp_path / "bomb.npz")
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    line = one_line_error(gentk_cli("fid", tmp_path / "bomb.npz", tmp_path / "ok.npz"), 1)
    assert "sigma.npy would decompress to" in line


def test_npz_whose_header_declares_a_huge_array_is_refused(gentk_cli, tmp_path):
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as zf:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (100_000, 100_000)})
        zf.writestr("mu.npy", _npy(np.zeros(4)))
        zf.writestr("sigma.npy", header.getvalue() + bytes(64))
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    line = one_line_error(gentk_cli("fid", tmp_path / "liar.npz", tmp_path / "ok.npz"), 1)
    assert "declares a (100000, 100000) array" in line


def test_statistics_beyond_inception_dims_are_refused(gentk_cli, tmp_path):
    np.savez(tmp_path / "big.npz", mu=np.zeros(3000, dtype=np.float16), sigma=np.zeros((3000, 3000), np.float16))
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    line = _with_timeout(lambda: one_line_error(gentk_cli("fid", tmp_path / "big.npz", tmp_path / "ok.npz"), 1), 30)
    assert "3000-d statistics; gentk scores at most 2048" in line


@pytest.mark.parametrize("mu, sigma, expected", [
    (np.zeros(4, dtype=complex), np.eye(4), "mu is complex128"),
    (np.zeros(4), np.eye(4) * np.nan, "NaN or infinite"),
    (np.array(["a"] * 4), np.eye(4), "mu is <U1"),
])
def test_complex_or_non_finite_statistics_are_refused(gentk_cli, tmp_path, mu, sigma, expected):
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=sigma)
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    assert expected in one_line_error(gentk_cli("fid", tmp_path / "bad.npz", tmp_path / "ok.npz"), 1)


# -- damage named, never hidden ------------------------------------------------------------------------

def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    from gentk.data import load_dataset

    folder = tmp_path / "sixteen"
    folder.mkdir()
    for i in range(4):
        pixels = (np.arange(28 * 28).reshape(28, 28) * 80 + i).clip(0, 65535).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    ds = load_dataset(f"folder:{folder}")
    assert ds.train.dtype == np.uint8
    assert (ds.train == 255).mean() < 0.01  # clipped, 99.7% of the pixels were white
    assert ds.train[0, 0, 14, 0] == round(14 * 28 * 80 / 257)


def test_float_images_are_refused(gentk_cli, tmp_path):
    folder = tmp_path / "float"
    folder.mkdir()
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(folder / "a.tiff")
    line = one_line_error(gentk_cli("train", "gan", "--data", f"folder:{folder}", "--run-dir", tmp_path / "r",
                                    *TINY_TRAIN), 1)
    assert "floating-point pixels" in line


# -- options validated at the edge, before a run directory exists ------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--device", "cpu:5"], "there is one cpu device"),
    (["--noise-dim", "0"], "--noise-dim must be at least 1"),
    (["--ema", "7"], "--ema must be below 1"),
    (["--adam-beta1", "1.5"], "--adam-beta1 must be below 1"),
    (["--seed", str(2**64)], "--seed must be in"),
    (["--seed", "-1"], "--seed must be in"),
    (["--data", "folder:"], "--data folder needs an argument"),
    (["--batch-size", "100000"], "--batch-size 100000 is more than the 48 training images"),
    (["--lr", "inf"], "--lr must be finite"),
    (["--data", "mnist:extra"], "--data mnist takes no argument"),
])
def test_bad_options_are_refused_before_the_run_directory_exists(gentk_cli, tmp_path, tiny_data, args, expected):
    base = ["train", "gan", "--run-dir", tmp_path / "r", "--data", tiny_data, *TINY_TRAIN]
    line = last_line_error(gentk_cli(*base, *args), 2)  # (the batch size is checked once the data is read)
    assert expected in line, line
    assert not (tmp_path / "r").exists()


def test_bad_model_options_from_the_python_api(tmp_path, tiny_data):
    from gentk.errors import UsageError

    with pytest.raises(UsageError, match="--n-critic must be at least 1"):
        train("wgan", tmp_path / "r", n_critic=0, data=tiny_data, device="cpu", progress=False)
    with pytest.raises(UsageError, match="--beta-min 5.0 is above --beta-max 2.0"):
        train("controlvae", tmp_path / "r", beta_min=5.0, beta_max=2.0, data=tiny_data, device="cpu", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_failed_start_up_can_simply_be_run_again(gentk_cli, tmp_path, tiny_data):
    args = ["train", "gan", "--max-steps", "2", "--run-dir", tmp_path / "r", *TINY_TRAIN]
    assert gentk_cli(*args, "--data", f"folder:{tmp_path / 'missing'}").code == 1
    assert not (tmp_path / "r").exists()
    assert gentk_cli(*args, "--data", tiny_data).code == 0  # the same command, no --resume needed


# -- every write an error path ------------------------------------------------------------------------

def _no_space(monkeypatch, where: str):
    """Every new file under ``where`` fails as on a full disk."""
    real = fsutil.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fsutil.tempfile, "mkstemp", mkstemp)


def test_full_disk_while_writing_samples(gentk_cli, run, tmp_path, monkeypatch):
    _no_space(monkeypatch, str(tmp_path / "out"))
    line = one_line_error(gentk_cli("sample", run, "-n", "4", "-o", tmp_path / "out"), 1)
    assert "could not write" in line and "No space left on device" in line


def test_full_disk_while_writing_grids_keeps_the_last_checkpoint(gentk_cli, run, monkeypatch):
    _no_space(monkeypatch, str(run / "samples"))
    line = last_line_error(resume(gentk_cli, run, "--sample-every", "1"), 1)
    assert "samples" in line and "No space left on device" in line
    monkeypatch.undo()
    assert resume(gentk_cli, run).code == 0  # the step-4 checkpoint was intact


def test_metrics_that_cannot_be_appended_are_one_line(gentk_cli, run, monkeypatch):
    from gentk import runs

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runs, "open_append", refuse)
    from gentk.engine import metrics

    monkeypatch.setattr(metrics, "open_append", refuse)
    line = last_line_error(resume(gentk_cli, run, "--log-every", "1"), 1)
    assert "could not append to" in line and "Read-only file system" in line


def test_fid_of_a_read_only_run_fails_before_any_work(gentk_cli, run, monkeypatch):
    from gentk.fid import score

    _no_space(monkeypatch, str(run))
    monkeypatch.setattr(score, "_extractor", lambda settings: pytest.fail("scoring started"))
    line = one_line_error(gentk_cli("fid", run, "--device", "cpu"), 1)
    assert f"could not write {run}" in line


def test_report_of_a_read_only_run_still_prints_its_table(gentk_cli, run, monkeypatch):
    _no_space(monkeypatch, str(run))
    result = gentk_cli("report", run)
    assert result.code == 0 and "gan" in result.out
    assert "plots of" in result.err and "not written" in result.err


def test_save_stats_to_an_unwritable_place_fails_first(gentk_cli, tmp_path):
    (tmp_path / "a-file").write_text("x")
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    line = one_line_error(gentk_cli("fid", tmp_path / "ok.npz", "--save-stats", tmp_path / "a-file" / "s.npz"), 1)
    assert "could not write" in line


def test_gentk_home_that_is_a_file_only_costs_the_cache(tmp_path, monkeypatch):
    from gentk.data import cache, sources

    (tmp_path / "home-file").write_text("x")
    monkeypatch.setenv("GENTK_HOME", str(tmp_path / "home-file"))
    arrays = {"x_train": np.zeros((4, 28, 28), np.uint8), "x_test": np.zeros((2, 28, 28), np.uint8)}
    ds = sources._resolve_idx_dataset("mnist", "MNIST", None, [("a test source", lambda: arrays)])
    assert "not cached" in ds.source and ds.train.shape == (4, 1, 28, 28)
    assert cache.load_arrays(tmp_path / "home-file" / "datasets" / "mnist.npz") is None
