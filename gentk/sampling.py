"""Load a trained run and draw images from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import check_model_tensors, latest_intact, model_state, read_checkpoint
from .config import TrainConfig, check_seed, resolve_device
from .errors import CheckpointError, UsageError
from .images import save_pngs
from .model import GenerativeModel, balanced_labels
from .plugins import get_registry
from .runs import RunDir


@dataclass
class LoadedRun:
    path: Path
    config: TrainConfig
    model: GenerativeModel
    checkpoint: str
    step: int

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 500, labels=None) -> torch.Tensor:
        """``n`` images in [0, 1] on the CPU, from noise drawn with ``seed``.

        ``labels`` (conditional models only): one class for every image, or one per image;
        default: the classes in turn, as balanced as ``n`` allows."""
        labels = self.labels_for(n, labels)
        check_seed(seed)
        g = torch.Generator().manual_seed(seed)
        device = next(self.model.parameters()).device
        out = []
        with get_registry().model_code(self.config.model, "sample"):
            for start in range(0, n, batch_size):
                noise = self.model.noise(min(batch_size, n - start), g).to(device)
                part = labels[start:start + noise.shape[0]] if labels is not None else None
                out.append(self.model.to_unit(self.model.generate(noise, part)).float().cpu())
        return torch.cat(out) if out else torch.empty(0)

    def labels_for(self, n: int, labels) -> torch.Tensor | None:
        """The label of each of ``n`` samples, checked against the model."""
        model = self.model
        if not model.conditional:
            if labels is not None:
                raise UsageError(f"model {self.config.model} is not conditional: it draws no class; drop --label "
                                 "(in Python, labels=); `gentk models --json` marks the models that are")
            return None
        if labels is None:
            return balanced_labels(n, model.num_classes)
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise UsageError(f"{labels.numel()} labels for {n} samples; give one label, or one per sample")
        bad = labels[(labels < 0) | (labels >= model.num_classes)]
        if bad.numel():
            raise UsageError(f"label {int(bad[0])} is not a class of model {self.config.model} "
                             f"(labels 0 to {model.num_classes - 1})")
        return labels


def load_run(run_dir, checkpoint: str | None = None, device: str = "cpu") -> LoadedRun:
    run = RunDir(run_dir)
    config = TrainConfig.from_dict(run.read_config())
    registry = get_registry()
    spec = registry.spec(config.model)
    if checkpoint is None:
        ckpt, _ = latest_intact(run.checkpoints)
        if ckpt is None:
            raise CheckpointError(f"{run.path} has no intact checkpoint yet; train it first")
    else:
        ckpt = read_checkpoint(run.checkpoints, checkpoint)
    model = registry.build_model(spec, config.options)
    state = model_state(ckpt.tensors)
    check_model_tensors(model, state, ckpt.name)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {ckpt.name} does not fit model {config.model}: {exc}") from exc
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"checkpoint {ckpt.name} holds NaN or infinite weights ({bad}): its samples would be "
                              "meaningless; use an earlier --checkpoint")
    model.to(resolve_device(device)).eval()
    return LoadedRun(run.path, config, model, ckpt.name, ckpt.meta["step"])


def sample_to_folder(run_dir, n: int, out_dir, checkpoint: str | None = None, seed: int = 0,
                     device: str = "cpu", labels=None) -> list[Path]:
    if n < 1:
        raise UsageError(f"-n must be at least 1 (got {n})")
    check_seed(seed)
    loaded = load_run(run_dir, checkpoint, device)
    loaded.labels_for(n, labels)  # a bad --label is refused before the output folder is touched
    out = Path(out_dir)
    if out.exists() and any(out.glob("*.png")):
        raise UsageError(f"{out} already holds PNG files; choose an empty output folder")
    return save_pngs(loaded.sample(n, seed, labels=labels), out)
