"""Untrusted files: random and mutated bytes end in a GentkError or success, never another exception."""

import hashlib
import io
import json
import math
import os
import shutil

import numpy as np
import torch
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pathlib import Path

from PIL import Image
from safetensors.torch import save as st_save

from gentk.checkpoint import load_safetensors_bytes, read_checkpoint, read_sidecar
from gentk.data.folder import read_images
from gentk.errors import GentkError
from gentk.fid.stats import load_stats
from gentk.runs import RunDir

#: Examples per property: 150 in CI; benchmarks/fuzz_long.py raises it (GENTK_FUZZ_EXAMPLES) for long runs.
EXAMPLES = int(os.environ.get("GENTK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: The properties that train (a resume per example) get a fifth as many.
FUZZ_RUN = settings(max_examples=max(10, EXAMPLES // 5), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


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


# -- field by field: every JSON file gentk reads back, each field replaced by a hostile value ----

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64, -(2**64), 10**400 // 10**300]),
    st.sampled_from([0.5, -0.0, 1e308, -1e308, math.inf, -math.inf, math.nan]),
    st.text(max_size=20), st.sampled_from(["", "x" * 5000, "step-00000001", "../../etc/passwd", "\x00"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=2), max_leaves=30),
)


def _paths(value, prefix=()):
    """Every place in a JSON document: its dict keys and list indices, depth first."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:5]):
            yield from _paths(v, prefix + (i,))


@st.composite
def field_mutation(draw, document):
    """``document`` with one field replaced, removed, or joined by an unknown one."""
    doc = json.loads(json.dumps(document))
    places = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(places))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
    if how == "remove":
        del parent[path[-1]]
    elif how == "add" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = draw(HOSTILE)
    else:
        parent[path[-1]] = draw(HOSTILE)
    return doc


def _dump(doc) -> str:
    return json.dumps(doc, allow_nan=True)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """A 4-step GAN run on a tiny folder (checkpoints at 2 and 4), the original the fuzzers copy."""
    from conftest import make_image_folder

    from gentk.engine import train

    root = tmp_path_factory.mktemp("fuzz")
    data = "folder:" + str(make_image_folder(root / "data"))
    train("gan", root / "run", max_steps=4, checkpoint_every=2, batch_size=8, data=data, device="cpu",
          progress=False, eval_limit=8)
    return root / "run"


def _copy(run, tmp_path) -> Path:
    target = tmp_path / f"run-{os.urandom(4).hex()}"
    shutil.copytree(run, target)
    return target


def _resume_ends_well(run: Path):
    """--resume of a tampered run: a GentkError or success; never another exception, never a
    checkpoint without its sidecar, and a refused resume leaves config.json as it was."""
    from gentk.checkpoint import list_checkpoints
    from gentk.engine import train

    before = (run / "config.json").read_bytes() if (run / "config.json").is_file() else None
    from gentk.engine import NonFiniteLoss

    try:
        train("gan", run, resume=True, max_steps=5, progress=False)
    except NonFiniteLoss:
        pass  # accepted, then training diverged (tampered numbers may do that): not a refusal
    except GentkError:
        if before is not None:
            assert (run / "config.json").read_bytes() == before
    ckpts = run / "checkpoints"
    if ckpts.is_dir() and not ckpts.is_symlink():
        weights = sorted(p.stem for p in ckpts.glob("step-*.safetensors"))
        assert weights == sorted(list_checkpoints(ckpts)), "a checkpoint without its sidecar"


def _load(path: Path):
    return json.loads(path.read_text())


@FUZZ_RUN
@given(data=st.data())
def test_config_fields(fuzz_run, tmp_path, data):
    run = _copy(fuzz_run, tmp_path)
    (run / "config.json").write_text(_dump(data.draw(field_mutation(_load(fuzz_run / "config.json")))))
    _ends_well(lambda: RunDir(run).read_config())
    _resume_ends_well(run)


@FUZZ_RUN
@given(data=st.data())
def test_sidecar_fields(fuzz_run, tmp_path, data):
    run = _copy(fuzz_run, tmp_path)
    for old in (run / "checkpoints").glob("step-00000002.*"):
        old.unlink()
    path = run / "checkpoints" / "step-00000004.json"
    path.write_text(_dump(data.draw(field_mutation(_load(path)))))
    _ends_well(lambda: read_checkpoint(run / "checkpoints", "step-00000004"))
    _resume_ends_well(run)


@FUZZ_RUN
@given(data=st.data())
def test_metrics_rows(fuzz_run, tmp_path, data):
    from gentk.report import summarize

    run = _copy(fuzz_run, tmp_path)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i] = data.draw(st.one_of(field_mutation(rows[i]), HOSTILE))
    (run / "metrics.jsonl").write_text("".join(_dump(r) + "\n" for r in rows))
    _ends_well(lambda: summarize(run))
    _resume_ends_well(run)


@FUZZ
@given(data=st.data())
def test_fid_json_fields(fuzz_run, tmp_path, data):
    from gentk.report import summarize

    run = tmp_path / "r"
    if not run.exists():
        shutil.copytree(fuzz_run, run, ignore=shutil.ignore_patterns("*.safetensors"))
    document = {"scores": {"samples": 12.5, "reconstructions": 30.1}, "counts": {"samples": 10}}
    (run / "fid.json").write_text(_dump(data.draw(st.one_of(field_mutation(document), HOSTILE))))
    _ends_well(lambda: summarize(run))


@FUZZ
@given(mu=st.sampled_from(["float64", "float16", "int8", "complex64", "bool", "U3"]),
       shape=st.sampled_from([(4,), (3,), (4, 1), (), (0,)]), sigma_shape=st.sampled_from([(4, 4), (3, 3), (4,), ()]),
       value=st.sampled_from([0.0, math.nan, math.inf, 1e308]))
def test_npz_stats_fields(tmp_path, mu, shape, sigma_shape, value):
    path = tmp_path / "stats.npz"
    np.savez(path, mu=np.full(shape, value if mu.startswith(("float", "complex")) else 1).astype(mu),
             sigma=np.full(sigma_shape, value))
    _ends_well(lambda: load_stats(path))


@FUZZ
@given(data=mutated(_valid_npz()), hashes=st.one_of(HOSTILE, st.just({"mu": "0" * 64})))
def test_dataset_cache(tmp_path, data, hashes):
    from gentk.data.cache import load_arrays

    (tmp_path / "c.npz").write_bytes(data)
    (tmp_path / "c.json").write_text(_dump(hashes))
    loaded = load_arrays(tmp_path / "c.npz")  # damage means "fetch again" (None), never an exception
    assert loaded is None or isinstance(loaded, dict)


# -- special files and links in place of each file a run holds ------------------------------------

RUN_FILES = ["config.json", "metrics.jsonl", "checkpoints/step-00000004.json",
             "checkpoints/step-00000004.safetensors", ".lock", "checkpoints", "samples", "fid.json"]


@pytest.mark.parametrize("name", RUN_FILES)
@pytest.mark.parametrize("kind", ["fifo", "link-dev-zero", "link-outside", "folder"])
def test_special_files_in_a_run(fuzz_run, tmp_path, name, kind):
    from gentk.report import summarize
    from gentk.sampling import load_run

    run = _copy(fuzz_run, tmp_path)
    for old in (run / "checkpoints").glob("step-00000002.*"):
        old.unlink()
    target = run / name
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "victim").write_text("keep")
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "link-dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "link-outside":
        target.symlink_to(outside / "victim" if "." in name else outside)
    else:
        target.mkdir()
    for action in (lambda: load_run(run), lambda: summarize(run)):
        _ends_well(action)
    _resume_ends_well(run)
    assert (outside / "victim").read_text() == "keep" and sorted(p.name for p in outside.iterdir()) == ["victim"]
