"""``--data cifar10``: CIFAR-10 from its python or binary batches, the cache, or torchvision's mirror.

The python batches are pickles, and a pickle can run any code it names: they
are read with an unpickler that builds only numpy arrays, lists, dicts and
bytes, and refuses anything else in one line. The binary batches need no
unpickling at all.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..safeio import MiB, read_bytes
from .cache import gentk_home, load_arrays, save_arrays
from .dataset import Dataset

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
#: A batch file holds 10,000 images (31 MB); anything far larger is not one.
BATCH_LIMIT = 64 * MiB
PIXELS = 3 * 32 * 32

#: The only callables a CIFAR pickle may name: what numpy needs to rebuild an array.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never does")


def read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x 3 x 32 x 32, int64 labels) of one ``cifar-10-batches-py`` file."""
    data = read_bytes(path, BATCH_LIMIT, DataError, "CIFAR-10 batch")
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - refused names, truncation, garbage: one line each
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (a {type(batch).__name__}, not a dict)")
    images, labels = batch.get(b"data"), batch.get(b"labels")
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
            or images.shape[1] != PIXELS or not isinstance(labels, list) or len(labels) != len(images)
            or not all(isinstance(y, int) and 0 <= y < 10 for y in labels)):
        raise DataError(f"{path} is not a CIFAR-10 python batch (expected uint8 N x 3072 data and N labels 0-9)")
    return images.reshape(-1, 3, 32, 32).copy(), np.asarray(labels, dtype=np.int64)


def read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-10-batches-bin`` file: records of a label byte and 3072 pixel bytes."""
    data = np.frombuffer(read_bytes(path, BATCH_LIMIT, DataError, "CIFAR-10 batch"), dtype=np.uint8)
    if len(data) == 0 or len(data) % (PIXELS + 1):
        raise DataError(f"{path} is not a CIFAR-10 binary batch ({len(data):,} bytes is not a whole number "
                        f"of {PIXELS + 1}-byte records)")
    records = data.reshape(-1, PIXELS + 1)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= 10:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (label {int(labels.max())} is not 0-9)")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _read_folder(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a ``cifar-10-batches-py`` or ``-bin`` folder, or None if it is neither."""
    if folder.name in ("cifar-10-batches-py", "cifar-10-batches-bin") and folder.is_dir():
        folder = folder.parent  # --data-root named the batches folder itself
    if (folder / "cifar-10-batches-py").is_dir():
        base, reader, suffix = folder / "cifar-10-batches-py", read_python_batch, ""
    elif (folder / "cifar-10-batches-bin").is_dir():
        base, reader, suffix = folder / "cifar-10-batches-bin", read_binary_batch, ".bin"
    else:
        return None
    missing = [n + suffix for n in TRAIN_BATCHES + [TEST_BATCH] if not (base / (n + suffix)).is_file()]
    if missing:
        raise DataError(f"{base} lacks {', '.join(missing)}; extract the whole CIFAR-10 archive there")
    train = [reader(base / (n + suffix)) for n in TRAIN_BATCHES]
    x_test, y_test = reader(base / (TEST_BATCH + suffix))
    return {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def _download(root: Path) -> dict[str, np.ndarray] | None:
    """torchvision's download helper (checks the archive's md5; nothing is unpickled by it)."""
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, str(root), md5=MD5)
    except Exception:  # noqa: BLE001 - no internet: the caller says what to put where
        return None
    return _read_folder(root)


def load_cifar10(data_root: Path | None) -> Dataset:
    from .sources import offline

    if data_root is not None:
        if not data_root.is_dir():
            raise UsageError(f"--data-root {data_root} does not exist or is not a folder")
        arrays = _read_folder(data_root)
        if arrays is not None:
            return _dataset(arrays, f"cifar10: batches in {data_root}")
    cache = gentk_home() / "datasets" / "cifar10.npz"
    arrays = load_arrays(cache)
    if arrays is not None:
        return _dataset(arrays, f"cifar10: cached in {cache}")
    arrays = None if offline() else _download(data_root or Path(tempfile.mkdtemp(prefix="gentk-cifar10-")))
    if arrays is None:
        raise DataError("cifar10 is not on this machine and could not be downloaded: extract "
                        f"{URL} (or the binary version) so that DATA_ROOT/cifar-10-batches-py (or "
                        "cifar-10-batches-bin) exists, and pass --data-root DATA_ROOT")
    try:
        save_arrays(cache, arrays)
        where = f"cached in {cache}"
    except OSError as exc:
        where = f"not cached ({exc}; set GENTK_HOME to a writable folder)"
    return _dataset(arrays, f"cifar10: downloaded by torchvision, {where}")


def _dataset(arrays: dict[str, np.ndarray], source: str) -> Dataset:
    return Dataset("cifar10", arrays["x_train"], arrays["x_test"],
                   f"{source} ({len(arrays['x_train'])} train / {len(arrays['x_test'])} test)",
                   arrays["y_train"], arrays["y_test"], list(CLASSES))
