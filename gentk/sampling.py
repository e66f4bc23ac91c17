"""Load a trained run and draw images from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import latest_intact, model_state, read_checkpoint
from .config import TrainConfig, resolve_device
from .engine import build_model
from .errors import CheckpointError, UsageError
from .images import save_pngs
from .model import GenerativeModel
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
    def sample(self, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
        """``n`` images in [0, 1] on the CPU, from noise drawn with ``seed``."""
        g = torch.Generator().manual_seed(seed)
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, n, batch_size):
            noise = self.model.noise(min(batch_size, n - start), g).to(device)
            out.append(self.model.to_unit(self.model.sample(noise)).float().cpu())
        return torch.cat(out) if out else torch.empty(0)


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
    model = build_model(registry, spec, config.options)
    try:
        model.load_state_dict(model_state(ckpt.tensors))
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {ckpt.name} does not fit model {config.model}: {exc}") from exc
    model.to(resolve_device(device)).eval()
    return LoadedRun(run.path, config, model, ckpt.name, ckpt.meta["step"])


def sample_to_folder(run_dir, n: int, out_dir, checkpoint: str | None = None, seed: int = 0,
                     device: str = "cpu") -> list[Path]:
    if n < 1:
        raise UsageError(f"-n must be at least 1 (got {n})")
    loaded = load_run(run_dir, checkpoint, device)
    out = Path(out_dir)
    if out.exists() and any(out.glob("*.png")):
        raise UsageError(f"{out} already holds PNG files; choose an empty output folder")
    return save_pngs(loaded.sample(n, seed), out)
