"""The example plugin in docs/examples installs, is listed, trains, and passes its own tests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import python_gentk

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
EXAMPLE = EXAMPLES / "gentk-hinge-gan"
CGAN = EXAMPLES / "gentk-cgan"


def _installed(path: Path, dist: str):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", str(path)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(pip + ["uninstall", "-y", dist], check=True, capture_output=True)


@pytest.fixture
def installed_example():
    yield from _installed(EXAMPLE, "gentk-hinge-gan")


@pytest.fixture
def installed_cgan():
    yield from _installed(CGAN, "gentk-cgan")


def test_installed_example_plugin_is_listed_and_trains(installed_example, tmp_path, tiny_data):
    listing = subprocess.run(python_gentk() + ["plugins", "--json"], capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(listing.stdout)["plugins"]}
    assert rows["hinge-gan"]["distribution"] == "gentk-hinge-gan" and rows["hinge-gan"]["error"] is None
    assert rows["hinge-gan"]["hooks"] == ["register_models"]  # the model's behaviour is on its class
    run = tmp_path / "r"
    result = subprocess.run(python_gentk() + ["train", "hinge-gan", "--max-steps", "5", "--data", tiny_data,
                                              "--run-dir", str(run), "--batch-size", "8", "--device", "cpu",
                                              "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000005"
    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                               capture_output=True, text=True, cwd=tmp_path)
    assert own_tests.returncode == 0, own_tests.stdout[-2000:]


def test_installed_cgan_trains_samples_a_class_and_passes_its_tests(installed_cgan, tmp_path):
    from gentk.testing import tiny_image_folder

    data = tiny_image_folder(tmp_path / "data", classes=4)
    run, out = tmp_path / "r", tmp_path / "threes"
    common = ["--data", data, "--run-dir", str(run), "--batch-size", "8", "--device", "cpu", "--no-progress"]
    trained = subprocess.run(python_gentk() + ["train", "cgan", "--max-steps", "5", "--num-classes", "4", *common],
                             capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert "4 classes from subfolders" in trained.stderr
    sampled = subprocess.run(python_gentk() + ["sample", str(run), "-n", "8", "--label", "3", "-o", str(out)],
                             capture_output=True, text=True)
    assert sampled.returncode == 0, sampled.stderr
    assert len(list(out.glob("*.png"))) == 8
    bad = subprocess.run(python_gentk() + ["sample", str(run), "-n", "8", "--label", "4", "-o", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "label 4 is not a class of model cgan (labels 0 to 3)" in bad.stderr
    assert not (tmp_path / "x").exists()
    info = json.loads(subprocess.run(python_gentk() + ["models", "cgan", "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["conditional"] == {"num_classes": 10}
    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CGAN / "tests")],
                               capture_output=True, text=True, cwd=tmp_path)
    assert own_tests.returncode == 0, own_tests.stdout[-2000:]
