"""The benchmark scripts stay runnable: they import (they share quality.py's row format and
machine.py's description) and their results rows name the machine they ran on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "machine.py"))
def test_benchmark_script_imports_and_explains_itself(script):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_machine_description_names_the_cpu_and_threads(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import machine

    text = machine.describe(torch.device("cpu"))
    assert machine.cpu_model() in text
    assert f"{torch.get_num_threads()} threads" in text
    assert machine.cpu_model().strip()


def test_gpu_script_refuses_missing_arguments_and_existing_runs(tmp_path):
    script = BENCHMARKS / "gpu_ssgan_rows.sh"
    assert subprocess.run(["bash", str(script)], capture_output=True, text=True).returncode == 2
    (tmp_path / "runs" / "ssgan-seed").mkdir(parents=True)
    proc = subprocess.run(["bash", str(script), str(tmp_path / "runs"), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "exists" in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_recon_variants_are_the_runs_reconstructions_and_their_clamped_logits(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import vae_recon_variants
    from gentk_vae import VAEModel, VAEOptions

    from gentk.images import to_uint8

    torch.manual_seed(0)
    model = VAEModel(VAEOptions(image_size=32, channels=1)).eval()
    real = torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8)
    out = vae_recon_variants.variants(model, real, batch_size=4)
    with torch.no_grad():
        assert torch.equal(out["mean-sigmoid"], to_uint8(model.reconstruct(real.float() / 255)))
        logits = model.decoder(model.encoder(real.float() / 255)[0])
    assert torch.equal(out["clamped-logits"], to_uint8(logits.clamp(0, 1)))
    assert not torch.equal(out["sampled-sigmoid"], out["mean-sigmoid"])  # z drawn, not the mean
    assert all(v.shape == real.shape and v.dtype == torch.uint8 for v in out.values())
    # A subset decodes only what it scores, and the same images: the noise does not depend on the ways.
    sampled = vae_recon_variants.variants(model, real, ways=("sampled-sigmoid",), batch_size=4)
    assert list(sampled) == ["sampled-sigmoid"] and torch.equal(sampled["sampled-sigmoid"], out["sampled-sigmoid"])
