"""A run's checkpoints as the loop sees them: everything needed to continue bit for bit.

Weights, optimizer state and every rank's RNG go into the safetensors file; the
training state, data position, precision scalers and config into the sidecar.
"""

from __future__ import annotations

from ..checkpoint import (latest_intact, model_state, optimizer_from_tensors, optimizer_to_tensors, restore_rng,
                          rng_tensors, save_checkpoint)
from ..errors import CheckpointError, RunDirError
from ..version import __version__


class Checkpointer:
    def __init__(self, run, dist, config, console):
        self.run, self.dist, self.config, self.console = run, dist, config, console
        self.last = 0  # step of the newest checkpoint written or resumed from

    def save(self, model, optimizers, state, stream, precision) -> None:
        rng = self._rng_tensors()  # a collective under torchrun: every rank's RNG goes in
        self.dist.call(lambda: self._write(model, optimizers, state, stream, precision, rng), main_only=True)
        self.last = state.step

    def _write(self, model, optimizers, state, stream, precision, rng: dict) -> None:
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        optim_meta = {}
        for name, opt in optimizers.items():
            t, meta = optimizer_to_tensors(f"optim/{name}", opt)
            tensors.update(t)
            optim_meta[name] = meta
        tensors.update(rng)
        meta = {"state": state.to_json(), "data": stream.position(), "optimizers": optim_meta,
                "precision": precision.state_dict(), "config": self.config.to_dict(),
                "gentk_version": __version__}
        try:
            save_checkpoint(self.run.checkpoints, state.step, tensors, meta, keep=self.config.keep_checkpoints)
        except OSError as exc:
            raise RunDirError(f"could not write a checkpoint in {self.run.checkpoints}: "
                              f"{exc.strerror or exc}; earlier checkpoints are intact") from exc

    def _rng_tensors(self) -> dict:
        """This process's RNG state; under torchrun every rank's, under rng/rank{R}/."""
        mine = rng_tensors()
        if not self.dist.enabled:
            return mine
        out = {}
        for key in sorted(mine):
            for rank, value in enumerate(self.dist.gather(mine[key])):
                out[key.replace("rng/", f"rng/rank{rank}/", 1)] = value
        return out

    def _restore_rng(self, tensors: dict) -> None:
        if self.dist.enabled:
            prefix = f"rng/rank{self.dist.rank}/"
            tensors = {k.replace(prefix, "rng/", 1): v for k, v in tensors.items() if k.startswith(prefix)}
        restore_rng(tensors)

    def restore(self, model, optimizers, state, stream, precision) -> None:
        """Load the newest intact checkpoint (every rank reads it: the run dir must be shared)."""
        ckpt, notes = latest_intact(self.run.checkpoints)
        for note in notes:
            self.console.print(f"[yellow]{note}[/yellow]")
        if ckpt is None:
            if notes:
                raise CheckpointError(f"no intact checkpoint in {self.run.checkpoints} to resume from")
            self.console.print("[yellow]no checkpoint yet: starting the run from step 0[/yellow]")
            if self.dist.is_main:
                self.run.truncate_metrics(0)
            return
        try:
            model.load_state_dict(model_state(ckpt.tensors))
            for name, opt in optimizers.items():
                optimizer_from_tensors(f"optim/{name}", opt, ckpt.tensors, ckpt.meta["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {ckpt.name} does not fit this model: {exc}") from exc
        self._restore_rng(ckpt.tensors)
        precision.load_state_dict(ckpt.meta.get("precision") or {})
        state.load_json(ckpt.meta["state"])
        stream.epoch, stream.cursor = ckpt.meta["data"]["epoch"], ckpt.meta["data"]["cursor"]
        if self.dist.is_main:
            self.run.truncate_metrics(state.step)
        self.last = state.step
        self.console.print(f"[dim]resumed from {ckpt.name} (epoch {state.epoch})[/dim]")
