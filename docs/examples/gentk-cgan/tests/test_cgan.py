"""Tests of the cgan example plugin, in-process, with gentk.testing (no install needed)."""

import pytest
import torch

import gentk
import gentk_cgan
from gentk.testing import registered, tiny_image_folder, train_steps


@pytest.fixture
def labelled(tmp_path):
    """48 training images in 4 class subfolders."""
    return tiny_image_folder(tmp_path / "data", classes=4)


def test_resume_is_bitwise_exact(tmp_path, labelled):
    with registered(gentk_cgan, "cgan-test"):
        straight = train_steps("cgan", tmp_path / "a", steps=6, data=labelled, num_classes=4, width=8)
        train_steps("cgan", tmp_path / "b", steps=3, data=labelled, num_classes=4, width=8)
        gentk.train("cgan", tmp_path / "b" / "run", resume=True, max_steps=6, progress=False)
        a = gentk.load_run(straight["run_dir"]).model.state_dict()
        b = gentk.load_run(tmp_path / "b" / "run").model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_samples_of_one_class_and_balanced_by_default(tmp_path, labelled):
    with registered(gentk_cgan, "cgan-test"):
        summary = train_steps("cgan", tmp_path, steps=2, data=labelled, num_classes=4, width=8)
        run = gentk.load_run(summary["run_dir"])
        threes = run.sample(8, labels=3)
        assert threes.shape == (8, 1, 28, 28) and 0 <= threes.min() and threes.max() <= 1
        assert run.labels_for(6, None).tolist() == [0, 1, 2, 3, 0, 1]
        # The label reaches the generator: the same noise gives other images for another class.
        assert not torch.equal(threes, run.sample(8, labels=0))
        with pytest.raises(gentk.GentkError, match="not a class"):
            run.sample(2, labels=4)


def test_unlabelled_data_is_refused(tmp_path):
    with registered(gentk_cgan, "cgan-test"), pytest.raises(gentk.GentkError, match="needs labelled data"):
        train_steps("cgan", tmp_path, steps=1, data=tiny_image_folder(tmp_path / "plain"))
