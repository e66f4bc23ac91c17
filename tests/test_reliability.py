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
    assert "3000-d statistics; gentk scores 2 to 2048 dimensions" in line


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
    train = load_dataset(f"folder:{folder}").fitted(28, 1, "crop").train.load()
    assert train.dtype == np.uint8
    assert (train == 255).mean() < 0.01  # clipped, 99.7% of the pixels were white
    assert train[0, 0, 14, 0] == round(14 * 28 * 80 / 257)


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


# -- found by an attacker's trial of the above (a helper given only the docs) ---------------------

def test_junk_sidecars_never_push_out_good_checkpoints(gentk_cli, run):
    (run / "checkpoints" / "step-99999999.json").write_text("garbage")
    result = resume(gentk_cli, run, "--keep-checkpoints", "1")
    assert result.code == 0 and "skipped damaged checkpoint" in result.err
    from gentk.checkpoint import latest_intact

    ckpt, _ = latest_intact(run / "checkpoints")
    assert ckpt.name == "step-00000006"
    assert (run / "checkpoints" / "step-99999999.json").read_text() == "garbage"  # left for the user to look at


def test_figure_names_cannot_leave_the_plots_folder(gentk_cli, run, tmp_path):
    edit_json(run / "config.json", lambda c: c.setdefault("display", {}).update(
        figures={"../../../PWNED": [["generator_loss"]]}))
    line = one_line_error(gentk_cli("report", run), 1)
    assert "field display.figures" in line and "is not a name of the form" in line
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_fifo_among_the_sample_grids_does_not_hang_report(gentk_cli, run):
    os.mkfifo(run / "samples" / "samples-00000009.png")
    (run / "samples" / "samples-00000010.png").write_bytes(b"not a png")
    result = _with_timeout(lambda: gentk_cli("report", run))
    assert result.code == 0, result
    assert (run / "plots" / "samples.png").is_file()  # drawn from the readable grids


@pytest.mark.parametrize("value", ["abc", None, 10**401, True])
def test_report_shows_only_numbers(gentk_cli, run, value):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    rows[-1]["generator_loss"] = value
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = gentk_cli("report", run)
    assert result.code == 0 and "Traceback" not in result.err, result


@pytest.mark.parametrize("change, expected", [
    (lambda t: t.update({"rng/cuda/x": torch.zeros(8, dtype=torch.uint8)}), "rng/cuda/x is not an RNG state"),
    (lambda t: t.update({"optim/generator/\u00b2/exp_avg": torch.zeros(2)}), "names no parameter"),
    (lambda t: t.update({"rng/cpu": torch.randint(0, 255, (5056,), dtype=torch.uint8)}), "RNG state is not valid"),
])
def test_more_tampered_tensors(gentk_cli, run, change, expected):
    only_latest(run)
    retensor(run, change)
    assert expected in last_line_error(resume(gentk_cli, run), 1)


@pytest.mark.parametrize("setting, value", [("amsgrad", True), ("differentiable", True), ("maximize", True),
                                            ("lr", -5), ("eps", -1.0), ("betas", [0.5, "x"])])
def test_optimizer_switches_and_signs_must_match(gentk_cli, run, setting, value):
    only_latest(run)
    edit_json(sidecar(run), lambda m: m["optimizers"]["generator"]["param_groups"][0].update({setting: value}))
    assert f"setting '{setting}'" in last_line_error(resume(gentk_cli, run), 1)


@pytest.mark.parametrize("field, value, expected", [
    ("data.epoch", 2**62, "disagrees with its step"),
    ("state.step", 2**62, "disagrees with its step"),
])
def test_state_and_position_must_agree(gentk_cli, run, field, value, expected):
    only_latest(run)

    def change(meta):
        section, key = field.split(".")
        meta[section][key] = value

    edit_json(sidecar(run), change)
    assert expected in last_line_error(resume(gentk_cli, run), 1)


def test_nan_weights_are_not_sampled(gentk_cli, run, tmp_path):
    only_latest(run)
    retensor(run, lambda t: t.update({k: torch.full_like(t[k], float("nan")) for k in t
                                      if k.startswith("model/generator") and t[k].is_floating_point()}))
    line = one_line_error(gentk_cli("sample", run, "-n", "2", "-o", tmp_path / "o"), 1)
    assert "holds NaN or infinite weights" in line and not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, expected", [
    (lambda p: np.savez(p, mu=np.zeros(8), sigma=-np.eye(8)), "not a covariance matrix"),
    (lambda p: np.savez(p, mu=np.zeros(8), sigma=np.triu(np.ones((8, 8)))), "not a covariance matrix"),
    (lambda p: np.savez(p, mu=np.zeros(1), sigma=np.eye(1)), "1-d statistics"),
    (lambda p: np.savez(p, mu=np.full(8, 1e300), sigma=np.eye(8)), "above 1e+12"),
])
def test_statistics_that_are_no_covariance_are_refused(gentk_cli, tmp_path, make, expected):
    make(tmp_path / "bad.npz")
    np.savez(tmp_path / "ok.npz", mu=np.zeros(8), sigma=np.eye(8))
    assert expected in one_line_error(gentk_cli("fid", tmp_path / "bad.npz", tmp_path / "ok.npz"), 1)


def test_an_npz_member_without_npy_suffix_is_checked_too(gentk_cli, tmp_path):
    with zipfile.ZipFile(tmp_path / "raw.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mu", _npy(np.zeros(4)))
        with zf.open("sigma", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (5000, 5000)})
            member.write(header.getvalue())
            for _ in range(40):
                member.write(bytes(1 << 20))
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    assert "would decompress to" in one_line_error(gentk_cli("fid", tmp_path / "raw.npz", tmp_path / "ok.npz"), 1)
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w") as zf:
        zf.writestr("mu", b"raw bytes")
        zf.writestr("sigma.npy", _npy(np.eye(4)))
    assert "mu is not a .npy array" in one_line_error(gentk_cli("fid", tmp_path / "bytes.npz", tmp_path / "ok.npz"), 1)


def test_a_symlink_loop_is_one_line(gentk_cli, tmp_path):
    (tmp_path / "l1.npz").symlink_to(tmp_path / "l2.npz")
    (tmp_path / "l2.npz").symlink_to(tmp_path / "l1.npz")
    np.savez(tmp_path / "ok.npz", mu=np.zeros(4), sigma=np.eye(4))
    one_line_error(gentk_cli("fid", tmp_path / "l1.npz", tmp_path / "ok.npz"), 1)


@pytest.mark.parametrize("args, expected", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--num-samples", "50"], "--num-samples apply to a run"),
    (["--checkpoint", "../../etc/passwd"], "--checkpoint apply to a run"),
    (["--seed", str(2**64)], "--seed must be in"),
])
def test_fid_options_are_checked(gentk_cli, tmp_path, args, expected):
    np.savez(tmp_path / "a.npz", mu=np.zeros(4), sigma=np.eye(4))
    np.savez(tmp_path / "b.npz", mu=np.ones(4), sigma=np.eye(4))
    assert expected in one_line_error(gentk_cli("fid", tmp_path / "a.npz", tmp_path / "b.npz", *args), 2)


def test_sample_seed_out_of_range(gentk_cli, run, tmp_path):
    assert "--seed must be in" in one_line_error(gentk_cli("sample", run, "-n", "1", "-o", tmp_path / "o",
                                                           "--seed", str(2**64)), 2)


def test_a_name_too_long_is_one_line(gentk_cli, tmp_path, tiny_data):
    long = tmp_path / ("x" * 300)
    one_line_error(gentk_cli("train", "gan", "--run-dir", long, "--data", tiny_data, *TINY_TRAIN), 1)
    one_line_error(gentk_cli("report", long), 1)
    line = one_line_error(gentk_cli("train", "gan", "--data", f"folder:{long}", "--run-dir", tmp_path / "r",
                                    *TINY_TRAIN), 1)
    assert "gentk-core" not in line


@pytest.mark.parametrize("env, expected", [({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not an integer"),
                                           ({"WORLD_SIZE": "2"}, "RANK is not set")])
def test_bad_torchrun_variables_are_one_line(gentk_cli, tmp_path, tiny_data, monkeypatch, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RANK", raising=False)
    assert expected in one_line_error(gentk_cli("train", "gan", "--run-dir", tmp_path / "r", "--data", tiny_data,
                                                *TINY_TRAIN), 2)


def test_an_empty_gentk_home_is_the_default_not_the_current_folder(monkeypatch, tmp_path):
    from gentk.data.cache import gentk_home

    monkeypatch.setenv("GENTK_HOME", "")
    assert gentk_home() == Path.home() / ".cache" / "gentk"


def test_a_metrics_line_without_end_costs_only_itself(gentk_cli, run):
    with open(run / "metrics.jsonl", "ab") as fh:
        fh.write(b"{" + b" " * (200 << 10))  # 200 KB, no newline: as a sparse or runaway file would be
    result = gentk_cli("report", run, "--no-plots")
    assert result.code == 0 and "longer than 65,536 bytes" in result.err
