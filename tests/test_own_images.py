"""Users' own images: RGB, any size, class folders, the decoded cache, data larger than memory."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gentk.data import load_dataset
from gentk.engine import train
from gentk.errors import ConfigMismatchError
from gentk.testing import rgb_image_folder

from conftest import TINY_TRAIN, last_line_error, metric_rows, one_line_error
from test_train import assert_bitwise_equal, final_tensors

TINY = dict(batch_size=8, device="cpu", eval_limit=16, progress=False)


@pytest.fixture
def photos(tmp_path):
    return rgb_image_folder(tmp_path / "photos")


def test_gan_on_an_rgb_folder_writes_rgb_grids_and_records_the_classes(gentk_cli, tmp_path, photos):
    run = tmp_path / "run"
    result = gentk_cli("train", "gan", "--data", photos, "--image-size", "32", "--max-steps", "20",
                       "--run-dir", run, *TINY_TRAIN)
    assert result.code == 0, result
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["image_size"] == 32 and config["options"]["channels"] == 3
    assert config["class_names"] == ["cat", "dog", "eel"] and len(config["data_fingerprint"]) == 64
    grid = Image.open(run / "samples" / "samples-00000020.png")
    assert grid.mode == "RGB"
    pixels = np.asarray(grid).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0  # colour, not gray copied thrice
    assert "3x32x32 (crop), decoded once into the cache" in result.err


@pytest.mark.parametrize("model, args", [("gan", dict(image_size=32)), ("vae", dict(image_size=64)),
                                         ("ssgan", {})])
def test_resume_on_an_rgb_folder_is_bitwise_exact(tmp_path, photos, model, args):
    # 24 images / batch 8: 3 steps per epoch, so 6 steps cross an epoch boundary and its evaluation.
    train(model, tmp_path / "straight", max_steps=6, epochs=5, data=photos, data_fraction=1.0, **args, **TINY)
    train(model, tmp_path / "split", max_steps=3, epochs=5, data=photos, data_fraction=1.0, **args, **TINY)
    train(model, tmp_path / "split", resume=True, max_steps=6, progress=False)
    assert_bitwise_equal(final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "split"))
    assert metric_rows(tmp_path / "straight") == metric_rows(tmp_path / "split")
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    assert config["options"]["channels"] == 3


def test_read_from_disk_trains_the_same_weights_as_from_memory(tmp_path, photos):
    """Above --max-data-memory batches come from the on-disk cache: same batches, same weights."""
    common = dict(max_steps=8, epochs=5, data=photos, image_size=32, data_fraction=0.75, **TINY)
    train("gan", tmp_path / "memory", **common)
    train("gan", tmp_path / "disk", max_data_memory="0", **common)
    assert_bitwise_equal(final_tensors(tmp_path / "memory"), final_tensors(tmp_path / "disk"))
    assert metric_rows(tmp_path / "memory") == metric_rows(tmp_path / "disk")


def test_a_second_run_opens_the_cache_and_a_damaged_cache_is_decoded_again(gentk_cli, tmp_path, photos):
    base = ["train", "vae", "--data", photos, "--image-size", "32", "--max-steps", "2", *TINY_TRAIN]
    first = gentk_cli(*base, "--run-dir", tmp_path / "a")
    assert first.code == 0 and "decoded once into the cache" in first.err, first
    second = gentk_cli(*base, "--run-dir", tmp_path / "b")
    assert second.code == 0 and "from cache" in second.err and "decoding" not in second.err, second
    assert_bitwise_equal(final_tensors(tmp_path / "a"), final_tensors(tmp_path / "b"))
    raw = next((tmp_path / "gentk-home" / "folders").glob("*/32px-3ch-crop/train.u8"))
    data = bytearray(raw.read_bytes())
    data[len(data) // 2] ^= 0xFF
    raw.write_bytes(bytes(data))
    third = gentk_cli(*base, "--run-dir", tmp_path / "c")
    assert third.code == 0 and "the cached copy was damaged" in third.err, third
    assert_bitwise_equal(final_tensors(tmp_path / "a"), final_tensors(tmp_path / "c"))


def test_a_folder_that_changed_is_decoded_again_and_refuses_resume(gentk_cli, tmp_path, photos):
    run = tmp_path / "run"
    assert gentk_cli("train", "gan", "--data", photos, "--max-steps", "2", "--run-dir", run, *TINY_TRAIN).code == 0
    folder = tmp_path / "photos"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(folder / "cat" / "new.png")
    line = one_line_error(gentk_cli("train", "gan", "--run-dir", run, "--resume", "--max-steps", "4",
                                    "--no-progress"))
    assert "its files changed since the run was trained" in line
    fresh = gentk_cli("train", "gan", "--data", photos, "--max-steps", "2", "--run-dir", tmp_path / "new", *TINY_TRAIN)
    assert fresh.code == 0 and "decoded once into the cache" in fresh.err and "25 train" in fresh.err


def test_mixed_sizes_and_colours_are_fitted_never_refused(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("L", (40, 20), 200).save(folder / "wide-gray.png")
    Image.new("RGB", (10, 30), (255, 0, 0)).save(folder / "tall-red.png")
    ds = load_dataset(f"folder:{folder}")
    assert ds.channels == 3
    for fit in ("crop", "pad", "resize"):
        data = ds.fitted(16, 3, fit).train.load()
        assert data.shape == (2, 3, 16, 16)
        red = data[0]  # "tall-red.png" sorts first
        if fit == "pad":  # black borders left and right of the centred tall image
            assert red[0, 8, 0] == 0 and red[0, 8, 8] == 255
        else:
            assert (red[0] == 255).all() and (red[1] == 0).all()
        assert (data[1] == 200).all() if fit != "pad" else data[1, :, 8, 8].tolist() == [200] * 3
    gray = ds.fitted(16, 1, "crop").train.load()
    assert gray.shape == (2, 1, 16, 16) and gray[0, 0, 8, 8] == round(0.299 * 255)


def test_an_unreadable_image_among_many_is_skipped_and_counted(gentk_cli, tmp_path, photos):
    (tmp_path / "photos" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = gentk_cli("train", "gan", "--data", photos, "--max-steps", "2", "--run-dir", tmp_path / "r", *TINY_TRAIN)
    assert result.code == 0, result
    assert "1 unreadable image file(s) skipped (first: dog/broken.jpg: not a readable image" in result.err


def test_an_empty_class_folder_is_refused_in_one_line(gentk_cli, tmp_path, photos):
    (tmp_path / "photos" / "empty").mkdir()
    line = one_line_error(gentk_cli("train", "gan", "--data", photos, "--run-dir", tmp_path / "r", *TINY_TRAIN))
    assert "class folder" in line and "empty has no images" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("model, size", [("gan", "48"), ("vae", "28"), ("ssgan", "128")])
def test_an_image_size_outside_the_models_set_is_refused_in_one_line(gentk_cli, tmp_path, photos, model, size):
    line = last_line_error(gentk_cli("train", model, "--image-size", size, "--data", photos,
                                     "--run-dir", tmp_path / "r", *TINY_TRAIN), 2)
    assert "--image-size" in line and size in line
    assert not (tmp_path / "r").exists()


def test_models_reports_parameter_counts_for_a_size(gentk_cli):
    seed = json.loads(gentk_cli("models", "gan", "--json").out)
    assert seed["parameters"] == 3_294_154 and seed["image"]["size"] == 28 and seed["image"]["channels"] == 1
    big = json.loads(gentk_cli("models", "gan", "--json", "--image-size", "64", "--channels", "3").out)
    assert big["image"] == dict(seed["image"], size=64, channels=3) and big["parameters"] > seed["parameters"]
    assert json.loads(gentk_cli("models", "vae", "--json").out)["parameters"] == 829_077
    assert json.loads(gentk_cli("models", "ssgan", "--json").out)["parameters"] == 5_159_558
    assert "must be one of 32, 64, 128" in one_line_error(gentk_cli("models", "vae", "--image-size", "48"), 2)


def test_class_folders_give_a_conditional_model_labels_and_sample_label_works(gentk_cli, tmp_path, photos):
    from gentk.testing import registered

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "docs" / "examples" / "gentk-cgan"))
    try:
        import gentk_cgan
    finally:
        sys.path.pop(0)
    with registered(gentk_cgan, "cgan-test"):
        run = tmp_path / "cgan"
        result = gentk_cli("train", "cgan", "--data", photos, "--num-classes", "3", "--max-steps", "3",
                           "--run-dir", run, *TINY_TRAIN)
        assert result.code == 0, result
        out = tmp_path / "dogs"
        result = gentk_cli("sample", run, "-n", "4", "--label", "1", "-o", out, "--device", "cpu")
        assert result.code == 0, result
        pngs = sorted(out.glob("*.png"))
        assert len(pngs) == 4 and Image.open(pngs[0]).mode == "RGB"
        line = one_line_error(gentk_cli("sample", run, "-n", "4", "--label", "3", "-o", tmp_path / "x"), 2)
        assert "label 3 is not a class of model cgan (labels 0 to 2)" in line


RSS_SCRIPT = r"""
import json, os, sys, threading, time
from gentk.engine import train

def resident() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

big, tiny, out, limit = sys.argv[1:5]
common = dict(max_steps=30, epochs=50, batch_size=4, device="cpu", eval_limit=8, progress=False, image_size=64)
# The same training on a tiny folder first, so that torch's own one-time allocations are made.
train("vae", out + "-warm", data=tiny, **common)
before, peak, done = resident(), [0], threading.Event()

def sample():  # the resident set every 2 ms while the measured run trains
    while not done.is_set():
        peak[0] = max(peak[0], resident())
        time.sleep(0.002)

watcher = threading.Thread(target=sample)
watcher.start()
train("vae", out, data=big if big != "-" else tiny, max_data_memory=limit, **common)
done.set()
watcher.join()
print(json.dumps({"growth_bytes": max(peak[0], resident()) - before}))
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="reads /proc/self/statm (Linux)")
def test_data_read_from_disk_does_not_grow_peak_memory(tmp_path):
    """How far the resident set of a run rises above where it started, less what the same run on
    16 images takes (the model, optimiser and activations): reading 9,600 64x64 RGB images
    (113 MiB decoded) from disk adds under a fifth of their size; from memory, over 80% of it
    (which shows that the measurement sees the data at all)."""
    rng = np.random.default_rng(0)
    big = tmp_path / "big"
    big.mkdir()
    noise = rng.integers(0, 256, (64, 64 + 9600, 3), dtype=np.uint8)
    for i in range(9600):
        Image.fromarray(noise[:, i:i + 64]).save(big / f"{i:05d}.png", compress_level=0)
    tiny = rgb_image_folder(tmp_path / "tiny", per_class=8, classes=2)
    decoded = 9600 * 3 * 64 * 64
    load_dataset(f"folder:{big}").fitted(64, 3, "crop", progress=False)  # decoded beforehand: not measured
    growth = {}
    for mode, data, limit in (("model", "-", "10GB"), ("disk", f"folder:{big}", "1MB"),
                              ("memory", f"folder:{big}", "10GB")):
        proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, data, tiny, str(tmp_path / mode), limit],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        growth[mode] = json.loads(proc.stdout.strip().splitlines()[-1])["growth_bytes"]
    print("resident-set growth (bytes):", growth, "decoded:", decoded)
    # Measured here: disk 4-12 MB above the model-only run, memory 108-117 MB (of 118 MB decoded);
    # the margins leave room for the allocator's noise (thread arenas, freed read buffers).
    assert growth["disk"] - growth["model"] < 0.2 * decoded, growth
    assert growth["memory"] - growth["model"] > 0.8 * decoded, growth


# -- CIFAR-10 ---------------------------------------------------------------------------------------

def _cifar_arrays(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(y) for y in rng.integers(0, 10, n)]


def write_cifar_python(root, n=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(n, i)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * n}, fh,
                        protocol=2)
    return folder


def test_cifar10_from_python_batches_and_from_binary_batches_agree(tmp_path):
    write_cifar_python(tmp_path / "py")
    binary = tmp_path / "bin" / "cifar-10-batches-bin"
    binary.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(6, i)
        records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
        (binary / f"{name}.bin").write_bytes(records.tobytes())
    a = load_dataset("cifar10", tmp_path / "py")
    b = load_dataset("cifar10", tmp_path / "bin")
    assert a.train.shape == (30, 3, 32, 32) and a.test.shape == (6, 3, 32, 32) and a.num_classes == 10
    assert np.array_equal(a.train, b.train) and np.array_equal(a.train_labels, b.train_labels)
    assert a.class_names[0] == "airplane"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_cifar_pickle_that_names_other_code_is_refused(gentk_cli, tmp_path):
    folder = write_cifar_python(tmp_path)
    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh)
    line = one_line_error(gentk_cli("train", "gan", "--data", "cifar10", "--data-root", tmp_path,
                                    "--run-dir", tmp_path / "r", *TINY_TRAIN))
    assert "data_batch_3 is not a CIFAR-10 python batch" in line and "builtins.print" in line


def test_cifar10_offline_without_files_says_what_to_put_where(gentk_cli, tmp_path):
    line = one_line_error(gentk_cli("train", "gan", "--data", "cifar10", "--run-dir", tmp_path / "r", *TINY_TRAIN))
    assert "cifar-10-batches-py" in line and "--data-root" in line


def test_resume_with_a_changed_cifar_root_is_not_an_issue_of_fingerprints(tmp_path):
    """Arrays datasets have no fingerprint: resume compares the settings as before."""
    write_cifar_python(tmp_path / "root")
    train("gan", tmp_path / "run", max_steps=2, data="cifar10", data_root=str(tmp_path / "root"), **TINY)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_fingerprint"] is None and config["options"]["channels"] == 3
    assert config["class_names"][:2] == ["airplane", "automobile"]
    with pytest.raises(ConfigMismatchError, match="--seed"):
        train("gan", tmp_path / "run", resume=True, max_steps=3, seed=1, progress=False)


def test_images_beside_class_folders_are_refused_in_one_line(gentk_cli, tmp_path, photos):
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "photos" / "stray.png")
    line = one_line_error(gentk_cli("train", "gan", "--data", photos, "--run-dir", tmp_path / "r", *TINY_TRAIN))
    assert "1 image(s) beside them (first: stray.png)" in line and "move those into a class folder" in line
    assert not (tmp_path / "r").exists()


def test_a_train_folder_alone_is_the_one_split_with_its_classes(tmp_path):
    rgb_image_folder(tmp_path / "data" / "train")
    (tmp_path / "data" / "README.txt").write_text("not an image: changes nothing")
    dataset = load_dataset(f"folder:{tmp_path / 'data'}")
    assert dataset.class_names == ["cat", "dog", "eel"]
    assert "train/ only (no test/" in dataset.source and "3 classes" in dataset.source
    (tmp_path / "only-test" / "test").mkdir(parents=True)
    with pytest.raises(Exception, match="has test/ but no train/"):
        load_dataset(f"folder:{tmp_path / 'only-test'}")


def test_a_relative_folder_is_recorded_absolute_and_resumes_from_anywhere(tmp_path, monkeypatch, gentk_cli):
    rgb_image_folder(tmp_path / "work" / "pics")
    monkeypatch.chdir(tmp_path / "work")
    run = tmp_path / "run"
    assert gentk_cli("train", "gan", "--data", "folder:pics", "--max-steps", "2", "--run-dir", run,
                     *TINY_TRAIN).code == 0
    absolute = f"folder:{(tmp_path / 'work' / 'pics').resolve()}"
    assert json.loads((run / "config.json").read_text())["data"] == absolute
    # Resumed with the relative spelling: the same files, and the record stays absolute.
    assert gentk_cli("train", "gan", "--data", "folder:pics", "--run-dir", run, "--resume", "--max-steps", "3",
                     "--no-progress").code == 0
    assert json.loads((run / "config.json").read_text())["data"] == absolute
    monkeypatch.chdir(tmp_path)
    # The default --fit spelled out is the run's own: not a change.
    result = gentk_cli("train", "gan", "--run-dir", run, "--resume", "--max-steps", "4", "--fit", "crop",
                       "--no-progress")
    assert result.code == 0, result
    assert json.loads((run / "config.json").read_text())["fit"] == "crop"
    line = one_line_error(gentk_cli("train", "gan", "--run-dir", run, "--resume", "--max-steps", "5", "--fit", "pad",
                                    "--no-progress"))
    assert "--fit (run: 'crop', now: 'pad')" in line


def test_the_samples_plot_of_an_rgb_run_is_in_colour(gentk_cli, tmp_path, photos):
    run = tmp_path / "run"
    assert gentk_cli("train", "gan", "--data", photos, "--image-size", "32", "--max-steps", "2",
                     "--run-dir", run, *TINY_TRAIN).code == 0
    strip = np.asarray(Image.open(run / "plots" / "samples.png").convert("RGB")).astype(int)
    assert np.abs(strip[..., 0] - strip[..., 1]).max() > 5  # a gray strip has none


def test_a_batch_of_one_is_refused_for_batch_norm_models_before_the_run_starts(gentk_cli, tmp_path, photos):
    line = one_line_error(gentk_cli("train", "gan", "--data", photos, "--batch-size", "1", "--run-dir", tmp_path / "r",
                                    "--device", "cpu", "--no-progress"), 2)
    assert "batch-norm layers" in line and "--batch-size 2" in line
    assert not (tmp_path / "r").exists()
