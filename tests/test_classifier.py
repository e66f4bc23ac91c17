"""gentk fid --features mnist-classifier: shipped weights, a Frechet distance, class coverage."""

import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import fid_folder_pair, one_line_error
from gentk.engine import train
from gentk.fid.classifier import WEIGHTS_PATH, class_summary, load_classifier, prepare


def test_shipped_weights_match_their_record():
    record = json.loads(WEIGHTS_PATH.with_suffix(".json").read_text())
    assert hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest() == record["sha256"]
    assert record["test_accuracy"] >= 0.99
    net, weights = load_classifier()
    assert weights.sha256 == record["sha256"]
    assert sum(p.numel() for p in net.parameters()) > 100_000


def test_prepare_brings_any_image_to_normalised_28px_gray():
    rgb64 = torch.full((3, 3, 64, 64), 255, dtype=torch.uint8)
    x = prepare(rgb64)
    assert x.shape == (3, 1, 28, 28)
    assert torch.allclose(x, torch.full_like(x, (1 - 0.1307) / 0.3081), atol=1e-5)


def test_class_summary():
    probs = np.zeros((100, 10))
    probs[:50, 3] = 0.9
    probs[50:, 7] = 0.7
    s = class_summary(probs)
    assert s["class_counts"][3] == 50 and s["class_counts"][7] == 50
    assert s["coverage"] == 2
    assert s["balance"] == pytest.approx(0.2)
    assert s["confidence"] == pytest.approx(0.8)
    uniform = class_summary(np.eye(10).repeat(10, 0))
    assert uniform["coverage"] == 10 and uniform["balance"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    # More images than the classifier's 128 feature dims: a well-conditioned covariance.
    return fid_folder_pair(tmp_path_factory.mktemp("cls"), 160)


def test_two_folders(gentk_cli, folders):
    a, b = folders
    same = gentk_cli("fid", a, a, "--features", "mnist-classifier", "--json", "--no-progress")
    assert same.code == 0, same
    assert abs(json.loads(same.out)["fid"]) < 1e-6
    diff = gentk_cli("fid", a, b, "--features", "mnist-classifier", "--json", "--no-progress")
    result = json.loads(diff.out)
    assert result["fid"] > 0.1 and result["feature_dims"] == 128 and result["features"] == "mnist-classifier"
    assert sum(result["inputs"][0]["classes"]["class_counts"]) == 160


def test_run_writes_its_own_file(tmp_path, gentk_cli, tiny_data):
    run = tmp_path / "r"
    train("gan", run, max_steps=2, data=tiny_data, batch_size=8, device="cpu", progress=False, eval_limit=8)
    result = gentk_cli("fid", run, "--features", "mnist-classifier", "--num-samples", "200", "--no-progress")
    assert result.code == 0, result
    assert "fid-mnist-classifier.json" in result.out and "cover" in result.out
    saved = json.loads((run / "fid-mnist-classifier.json").read_text())
    assert saved["feature_dims"] == 128 and sum(saved["sample_classes"]["class_counts"]) == 200
    assert saved["weights"]["network"] == "mnist-classifier"
    assert not (run / "fid.json").exists()  # the Inception result is a different file


def test_inception_only_options_are_refused(gentk_cli, folders):
    a, b = folders
    line = one_line_error(gentk_cli("fid", a, b, "--features", "mnist-classifier", "--dims", "64"), 2)
    assert "--dims" in line and "Inception" in line


def test_samples_written_elsewhere_score_as_the_run_would(tmp_path, gentk_cli, tiny_data):
    """fid_of_samples on `gentk sample`'s PNGs gives the number `gentk fid RUN` gives (same seed and count)."""
    from gentk.errors import DataError
    from gentk.fid import FidSettings, fid_of_samples

    run = tmp_path / "r"
    train("gan", run, max_steps=2, data=tiny_data, batch_size=8, device="cpu", progress=False, eval_limit=8)
    assert gentk_cli("sample", run, "-n", "40", "-o", tmp_path / "pngs").code == 0
    assert gentk_cli("fid", run, "--features", "mnist-classifier", "--num-samples", "40", "--no-progress").code == 0
    direct = json.loads((run / "fid-mnist-classifier.json").read_text())
    settings = FidSettings(device="cpu", features="mnist-classifier", progress=False)
    elsewhere = fid_of_samples(run, tmp_path / "pngs", settings)
    assert elsewhere["scores"]["samples"] == pytest.approx(direct["scores"]["samples"], rel=1e-6)
    assert elsewhere["sample_classes"] == direct["sample_classes"]
    assert elsewhere["reference"]["images"] == direct["reference"]["images"] == 16
    # Images of another size than the run's model makes are refused, not scored.
    small = tmp_path / "small"
    small.mkdir()
    from PIL import Image
    for i in range(3):
        Image.new("L", (16, 16)).save(small / f"{i}.png")
    with pytest.raises(DataError, match="model gan makes"):
        fid_of_samples(run, small, settings)
