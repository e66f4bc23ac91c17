"""An MNIST classifier as a second feature space for the Frechet distance, and class statistics.

pytorch-fid's maintainers call Inception FID on MNIST of limited meaning: an
ImageNet network sees digits as blurry shapes. A small CNN trained on MNIST
itself sees strokes and classes. `gentk fid --features mnist-classifier`
uses its 128-d penultimate activations for the Frechet distance and adds what
a digit generator is really judged on: the share of each predicted class
(are all ten digits there?) and the classifier's confidence (do they look
like digits?). The weights ship with gentk (safetensors) and
`scripts/train_mnist_classifier.py` reproduces them.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..errors import DataError
from ..progress import simple_progress

WEIGHTS_PATH = Path(__file__).with_name("mnist_classifier.safetensors")
FEATURE_DIMS = 128
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MnistClassifier(nn.Module):
    """Two conv blocks and a 128-unit hidden layer: ~99.2% test accuracy after a few CPU minutes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, FEATURE_DIMS), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(FEATURE_DIMS, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: N x 1 x 28 x 28, normalised; returns (features N x 128, logits N x 10)."""
        h = self.features(x)
        return h, self.head(h)


def prepare(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W -> normalised float N x 1 x 28 x 28 (gray, resized as gentk fits data)."""
    from ..data.prepare import fit_images

    if images.shape[1:] != (1, 28, 28):
        images = fit_images(images.numpy(), 28, 1, "resize")
    return (images.float() / 255 - MNIST_MEAN) / MNIST_STD


@dataclass
class ClassifierWeights:
    path: str
    sha256: str
    source: str = "gentk"

    def record(self) -> dict:
        return {"source": self.source, "network": "mnist-classifier", "path": self.path, "sha256": self.sha256}


def load_classifier(path: Path = WEIGHTS_PATH) -> tuple[MnistClassifier, ClassifierWeights]:
    if not path.is_file():
        raise DataError(f"the MNIST classifier weights {path} are missing; reinstall gentk or run "
                        "python scripts/train_mnist_classifier.py")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    net = MnistClassifier()
    try:
        net.load_state_dict(load_file(path))
    except Exception as exc:  # noqa: BLE001 - any damage is one message
        raise DataError(f"the MNIST classifier weights {path} are damaged ({exc}); reinstall gentk") from None
    return net.eval(), ClassifierWeights(str(path), digest)


class ClassifierFeatures:
    """uint8 images -> 128-d features (float64), like FeatureExtractor; keeps the class probabilities too."""

    def __init__(self, device: torch.device, batch_size: int = 500, progress: bool = True):
        self.model, self.weights = load_classifier()
        self.model = self.model.to(device)
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.dims = FEATURE_DIMS
        self.images_per_second = None
        self.last_probs: np.ndarray | None = None

    def __call__(self, images: torch.Tensor, label: str = "features") -> np.ndarray:
        n = images.shape[0]
        feats = np.empty((n, self.dims), dtype=np.float64)
        probs = np.empty((n, 10), dtype=np.float64)
        started = time.perf_counter()
        with torch.inference_mode(), simple_progress(n, label, self.progress) as advance:
            for start in range(0, n, self.batch_size):
                x = prepare(images[start:start + self.batch_size]).to(self.device)
                h, logits = self.model(x)
                feats[start:start + x.shape[0]] = h.double().cpu().numpy()
                probs[start:start + x.shape[0]] = F.softmax(logits.double(), 1).cpu().numpy()
                advance(x.shape[0])
        self.images_per_second = n / max(time.perf_counter() - started, 1e-9)
        self.last_probs = probs
        return feats


def class_summary(probs: np.ndarray) -> dict:
    """What a digit generator makes: class shares, how many classes it covers, how confidently.

    coverage: classes predicted for at least half their fair share (5% of the
    images); balance: exp(entropy of the class shares) / 10 (1 = all ten equally
    often); confidence: mean top-class probability.
    """
    counts = np.bincount(probs.argmax(1), minlength=10)
    shares = counts / max(counts.sum(), 1)
    entropy = -sum(p * math.log(p) for p in shares if p > 0)
    return {
        "class_counts": [int(c) for c in counts],
        "coverage": int((shares >= 0.05).sum()),
        "balance": round(math.exp(entropy) / 10, 4),
        "confidence": round(float(probs.max(1).mean()), 4),
    }
