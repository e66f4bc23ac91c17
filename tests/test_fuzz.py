"""Untrusted files: random and mutated bytes end in a GentkError or success, never another exception."""

import hashlib
import io
import json

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save as st_save

from gentk.checkpoint import load_safetensors_bytes, read_checkpoint, read_sidecar
from gentk.data.folder import read_images
from gentk.errors import GentkError
from gentk.fid.stats import load_stats
from gentk.runs import RunDir

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_safetensors() -> bytes:
    return st_save({"model/w": torch.arange(12, dtype=torch.float32).view(3, 4), "rng/cpu": torch.zeros(5, dtype=torch.uint8)})


def _valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, mu=np.zeros(4), sigma=np.eye(4))
    return buf.getvalue()


def _valid_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    return buf.getvalue()


def _sidecar(payload: bytes) -> bytes:
    return json.dumps({"format": 1, "step": 1, "size": len(payload),
                       "sha256": hashlib.sha256(payload).hexdigest()}).encode()


def mutated(seed: bytes):
    """Random bytes, or the valid file with bytes flipped, cut, or inserted."""
    def mutate(args):
        positions, values, cut = args
        data = bytearray(seed)
        for p, v in zip(positions, values):
            data[p % len(data)] = v
        return bytes(data[:cut % (len(data) + 1)] if cut is not None else data)

    edits = st.tuples(st.lists(st.integers(0, 1 << 20), max_size=8), st.lists(st.integers(0, 255), max_size=8),
                      st.one_of(st.none(), st.integers(0, 1 << 20)))
    return st.one_of(st.binary(max_size=512), edits.map(mutate))


def _ends_well(fn):
    try:
        fn()
    except GentkError:
        pass


@FUZZ
@given(data=mutated(_valid_safetensors()))
def test_safetensors_payloads(data):
    _ends_well(lambda: load_safetensors_bytes(data, "fuzz.safetensors"))


@FUZZ
@given(data=mutated(_valid_safetensors()))
def test_checkpoint_loader(tmp_path, data):
    (tmp_path / "step-00000001.safetensors").write_bytes(data)
    (tmp_path / "step-00000001.json").write_bytes(_sidecar(data))  # a matching checksum: parse it
    _ends_well(lambda: read_checkpoint(tmp_path, "step-00000001"))


@FUZZ
@given(data=mutated(_sidecar(_valid_safetensors())))
def test_sidecar_loader(tmp_path, data):
    path = tmp_path / "step-00000001.json"
    path.write_bytes(data)
    _ends_well(lambda: read_sidecar(path))


@FUZZ
@given(data=mutated(b'{"model": "vae", "options": {"dim_z": 10}, "epochs": 1}'))
def test_run_config_loader(tmp_path, data):
    (tmp_path / "config.json").write_bytes(data)
    _ends_well(lambda: RunDir(tmp_path).read_config())


@FUZZ
@given(data=mutated(_valid_npz()))
def test_npz_stats_loader(tmp_path, data):
    path = tmp_path / "stats.npz"
    path.write_bytes(data)
    _ends_well(lambda: load_stats(path))


# Found by this test in CI: an empty IDAT chunk, which Pillow reports as a SyntaxError.
BROKEN_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00"
              b"\x00\xe1d\xe1W\x00\x00\x00\x00IDAT\x00\x00\x00\x00\x00\x00\x00\x00")


@FUZZ
@given(data=mutated(_valid_png()))
@example(data=BROKEN_PNG)
def test_image_loader(tmp_path, data):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    _ends_well(lambda: read_images([path]))
