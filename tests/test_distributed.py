"""torchrun on the CPU (gloo, 2 processes): same numbers as one big batch, exact resume, rank 0 writes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_image_folder, metric_rows, one_line_error, python_gentk
from gentk.checkpoint import list_checkpoints, read_checkpoint

# A VAE whose code is the posterior mean (no sampling noise), so a 2-process run
# and a 1-process run do the same arithmetic and can be compared number for number.
NOISELESS_PLUGIN = '''
import gentk
from gentk import ModelSpec, TrainDefaults
from gentk_vae import VAEModel, VAEOptions


class NoiselessVAE(VAEModel):
    def forward(self, x):
        mean, logvar = self.encoder(x)
        return self.decoder(mean), mean, logvar


@gentk.hookimpl
def register_models(register):
    register(ModelSpec(name="vae-noiseless", model=NoiselessVAE, options=VAEOptions,
                       defaults=TrainDefaults(epochs=100, batch_size=4, lr=1e-4),
                       description="VAE without sampling noise (test)"))
'''

COMMON = ["--device", "cpu", "--no-progress", "--eval-limit", "8", "--epochs", "100"]


@pytest.fixture(scope="module")
def data32(tmp_path_factory) -> str:
    """32 training images: 4 global batches of 8, so one and two processes see the same batches."""
    return "folder:" + str(make_image_folder(tmp_path_factory.mktemp("d32"), n_train=32, n_test=8))


@pytest.fixture
def env(tmp_path) -> dict:
    site = tmp_path / "site"
    dist = site / "gentk_noiseless-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gentk-noiseless\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gentk]\nvae-noiseless = gentk_noiseless\n")
    (site / "gentk_noiseless.py").write_text(NOISELESS_PLUGIN)
    return dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def run(cmd, env, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=300, **kw)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = list_checkpoints(run_dir / "checkpoints")[0]
    return read_checkpoint(run_dir / "checkpoints", newest).tensors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_twice_the_batch(tmp_path, env, data32):
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["train", "vae-noiseless", "--data", data32, "--max-steps", "20", "--checkpoint-every", "20", *COMMON]
    run(python_gentk() + base + ["--run-dir", one, "--batch-size", "8"], env)
    run(torchrun("--standalone", "--nproc-per-node", "2", "-m", "gentk", *base, "--run-dir", two,
                 "--batch-size", "4"), env)
    a, b = final_tensors(one), final_tensors(two)
    model_keys = [k for k in a if k.startswith("model/")]
    assert model_keys and set(model_keys) <= set(b)
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in model_keys)
    assert worst < 1e-5, worst
    # Logged losses are the mean over ranks: the big batch's loss.
    ra, rb = metric_rows(one), metric_rows(two)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        if x.get("split") != "test":
            assert abs(x["loss"] - y["loss"]) <= 1e-4 * abs(x["loss"]), (x, y)
    config = json.loads((two / "config.json").read_text())
    assert config["world_size"] == 2 and config["batch_size"] == 4


def test_only_rank_zero_writes(tmp_path, env, data32):
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["train", "vae", "--data", data32, "--max-steps", "3", "--checkpoint-every", "3", "--sample-every", "3",
            "--batch-size", "4", *COMMON]
    run(python_gentk() + base + ["--run-dir", one], env)
    result = run(python_gentk() + base + ["--run-dir", two, "--nproc", "2"], env)
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*"))  # noqa: E731
    assert files(one) == files(two)
    assert len((two / "metrics.jsonl").read_text().splitlines()) == len((one / "metrics.jsonl").read_text().splitlines())
    assert result.stderr.count("done:") == 1  # rank 0 speaks for the job
    rows = metric_rows(two)
    assert all(r.get("images_per_sec", 0) >= 0 for r in rows)
    assert "images_per_sec" in json.loads((two / "metrics.jsonl").read_text().splitlines()[-1])


def test_ranks_share_one_cache_and_stream_the_same_batches(tmp_path, env, data32):
    """Rank 0 decodes the folder once; from disk (--max-data-memory 0) the job is bitwise the in-memory job."""
    memory, disk = tmp_path / "memory", tmp_path / "disk"
    base = ["train", "vae", "--data", data32, "--max-steps", "6", "--checkpoint-every", "6", "--batch-size", "4",
            "--nproc", "2", *COMMON]
    first = run(python_gentk() + base + ["--run-dir", memory], env)
    second = run(python_gentk() + base + ["--run-dir", disk, "--max-data-memory", "0"], env)
    assert "from cache" not in first.stderr and "from cache" in second.stderr, second.stderr
    assert "read from disk" in second.stderr
    assert len(list((Path(env["GENTK_HOME"]) / "folders").glob("*/*/manifest.json"))) == 1
    a, b = final_tensors(memory), final_tensors(disk)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_and_resume_under_torchrun_is_exact(tmp_path, env, data32):
    """SIGKILL the whole job after a checkpoint, resume with torchrun: bitwise equal to an uninterrupted job."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    base = ["train", "vae", "--data", data32, "--max-steps", "10", "--checkpoint-every", "1", "--batch-size", "4",
            *COMMON]
    launch = torchrun("--standalone", "--nproc-per-node", "2", "-m", "gentk")
    run(launch + base + ["--run-dir", straight], env)

    proc = subprocess.Popen([str(c) for c in launch + base + ["--run-dir", killed]], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        names = list_checkpoints(killed / "checkpoints") if (killed / "checkpoints").is_dir() else []
        if any(int(n.split("-")[1]) >= 4 for n in names):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list_checkpoints(killed / "checkpoints")) >= 1

    run(launch + ["train", "vae", "--run-dir", killed, "--resume", "--no-progress"], env)
    a, b = final_tensors(straight), final_tensors(killed)
    assert sorted(a) == sorted(b)
    assert any(k.startswith("rng/rank1/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert metric_rows(straight) == metric_rows(killed)


def test_resume_with_another_world_size_is_refused(tmp_path, env, data32, gentk_cli):
    run_dir = tmp_path / "r"
    run(python_gentk() + ["train", "vae", "--data", data32, "--max-steps", "2", "--batch-size", "4",
                          "--run-dir", run_dir, "--nproc", "2", *COMMON], env)
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    line = one_line_error(gentk_cli("train", "vae", "--run-dir", run_dir, "--resume", "--max-steps", "4"), 1)
    assert "number of processes (run: 2, now: 1" in line
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before


def test_two_nodes_on_one_machine(tmp_path, env, data32):
    """Two torchrun invocations, one process each, meeting at a c10d rendezvous on 127.0.0.1."""
    run_dir = tmp_path / "two-nodes"
    port = free_port()
    cmd = torchrun("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "gentk-test", "-m", "gentk",
                   "train", "vae", "--data", data32, "--max-steps", "4", "--checkpoint-every", "2", "--batch-size", "4",
                   "--run-dir", str(run_dir), *COMMON)
    nodes = [subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [n.communicate(timeout=300) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], [o[1][-2000:] for o in outs]
    assert list_checkpoints(run_dir / "checkpoints")[0] == "step-00000004"
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    assert [r["step"] for r in metric_rows(run_dir) if "split" not in r] == [1, 2, 3, 4]


def test_sync_bn_needs_cuda(tmp_path, gentk_cli, tiny_data):
    line = one_line_error(gentk_cli("train", "gan", "--sync-bn", "--data", tiny_data, "--device", "cpu",
                                    "--run-dir", tmp_path / "r"), 2)
    assert "--sync-bn" in line and "cuda" in line
    assert not (tmp_path / "r").exists()


def test_nproc_must_be_positive(tmp_path, gentk_cli, tiny_data):
    line = one_line_error(gentk_cli("train", "vae", "--nproc", "0", "--data", tiny_data, "--run-dir", tmp_path / "r"), 2)
    assert "--nproc must be at least 1" in line
