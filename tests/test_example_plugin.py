"""The example plugin in docs/examples installs, is listed, trains, and passes its own tests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import python_gentk

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "gentk-hinge-gan"


@pytest.fixture
def installed_example():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", str(EXAMPLE)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(pip + ["uninstall", "-y", "gentk-hinge-gan"], check=True, capture_output=True)


def test_installed_example_plugin_is_listed_and_trains(installed_example, tmp_path, tiny_data):
    listing = subprocess.run(python_gentk() + ["plugins", "--json"], capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(listing.stdout)["plugins"]}
    assert rows["hinge-gan"]["distribution"] == "gentk-hinge-gan" and rows["hinge-gan"]["error"] is None
    assert {"register_models", "build_model", "compute_loss"} <= set(rows["hinge-gan"]["hooks"])
    run = tmp_path / "r"
    result = subprocess.run(python_gentk() + ["train", "hinge-gan", "--max-steps", "5", "--data", tiny_data,
                                              "--run-dir", str(run), "--batch-size", "8", "--device", "cpu",
                                              "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000005"
    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                               capture_output=True, text=True, cwd=tmp_path)
    assert own_tests.returncode == 0, own_tests.stdout[-2000:]
