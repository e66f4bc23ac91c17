"""Train the MNIST classifier behind `gentk fid --features mnist-classifier`, reproducibly.

Fixed seed, fixed data order, CPU: the same command gives the same test
accuracy (and on the same machine and thread count, the same weights). Writes
gentk/fid/mnist_classifier.safetensors and gentk/fid/mnist_classifier.json
(accuracy, settings, sha256), or with --check compares a fresh training with
the shipped record instead of overwriting it.

Usage: python scripts/train_mnist_classifier.py [--epochs 5] [--seed 0] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gentk.data import load_dataset  # noqa: E402
from gentk.fid.classifier import WEIGHTS_PATH, MnistClassifier, prepare  # noqa: E402

RECORD_PATH = WEIGHTS_PATH.with_suffix(".json")


def lr_at(epoch: int, epochs: int, base: float) -> float:
    """Constant, then a tenth for the last epoch and a hundredth... a short step decay."""
    if epoch >= epochs - 1:
        return base * 0.1
    return base


@torch.no_grad()
def accuracy(net, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    correct = 0
    for start in range(0, x.shape[0], 1000):
        correct += (net(x[start:start + 1000])[1].argmax(1) == y[start:start + 1000]).sum().item()
    return correct / x.shape[0]


def train(epochs: int, seed: int, batch_size: int = 128, lr: float = 1e-3) -> tuple[MnistClassifier, dict]:
    torch.manual_seed(seed)
    ds = load_dataset("mnist", None)
    if ds.train_labels is None or ds.test_labels is None:
        raise SystemExit("this MNIST source has no labels")
    x_train, x_test = prepare(torch.from_numpy(ds.train)), prepare(torch.from_numpy(ds.test))
    y_train, y_test = torch.from_numpy(ds.train_labels).long(), torch.from_numpy(ds.test_labels).long()
    net = MnistClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order_gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(epoch, epochs, lr)
        net.train()
        order = torch.randperm(x_train.shape[0], generator=order_gen)
        for start in range(0, x_train.shape[0], batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(net(x_train[idx])[1], y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = accuracy(net, x_test, y_test)
        print(f"epoch {epoch + 1}/{epochs}: test accuracy {acc:.4f} ({time.perf_counter() - started:.0f} s)",
              flush=True)
    record = {"test_accuracy": acc, "train_accuracy": accuracy(net, x_train, y_train), "epochs": epochs,
              "seed": seed, "batch_size": batch_size, "lr": lr, "train_seconds": round(time.perf_counter() - started, 1),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
              "data": ds.source}
    return net.eval(), record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="Train again and compare with the shipped record.")
    args = ap.parse_args()
    net, record = train(args.epochs, args.seed)
    if args.check:
        shipped = json.loads(RECORD_PATH.read_text())
        diff = abs(record["test_accuracy"] - shipped["test_accuracy"])
        print(f"fresh {record['test_accuracy']:.4f} vs shipped {shipped['test_accuracy']:.4f}: "
              f"difference {diff:.4f} ({'within' if diff <= 0.001 else 'OUTSIDE'} 0.1%)")
        raise SystemExit(0 if diff <= 0.001 else 1)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, WEIGHTS_PATH)
    record["sha256"] = hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest()
    RECORD_PATH.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {WEIGHTS_PATH} (sha256 {record['sha256'][:12]}), test accuracy {record['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
