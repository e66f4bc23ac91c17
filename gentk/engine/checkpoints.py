"""A run's checkpoints as the loop sees them: everything needed to continue bit for bit.

Weights, optimizer state and every rank's RNG go into the safetensors file; the
training state, data position, precision scalers and config into the sidecar.
"""

from __future__ import annotations

from ..checkpoint import (check_model_tensors, check_optimizer_tensors, check_rng, latest_intact, model_state,
                          optimizer_from_tensors, optimizer_to_tensors, restore_rng, rng_tensors, save_checkpoint)
from ..schema import RESUMABLE, validate
from ..errors import CheckpointError, RunDirError
from ..version import __version__
from rich.markup import escape


class Checkpointer:
    def __init__(self, run, dist, config, console):
        self.run, self.dist, self.config, self.console = run, dist, config, console
        self.last = 0  # step of the newest checkpoint written or resumed from
        self._resumed_from = None  # its name, for confirm_resume

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

    def _my_rng(self, tensors: dict) -> dict:
        """This rank's RNG tensors, named as a single process saves them."""
        if self.dist.enabled:
            prefix = f"rng/rank{self.dist.rank}/"
            return {k.replace(prefix, "rng/", 1): v for k, v in tensors.items() if k.startswith(prefix)}
        return {k: v for k, v in tensors.items() if k.startswith("rng/")}

    def _truncate_metrics(self, step: int) -> None:
        if self.dist.is_main:
            for note in self.run.truncate_metrics(step):
                self.console.print(f"[yellow]{escape(note)}[/yellow]", highlight=False)

    def restore(self, model, optimizers, state, stream, precision) -> None:
        """Load the newest intact checkpoint (every rank reads it: the run dir must be shared)."""
        ckpt, notes = latest_intact(self.run.checkpoints)
        for note in notes:
            self.console.print(f"[yellow]{escape(note)}[/yellow]")
        if ckpt is None:
            if notes:
                newest = notes[0].removeprefix("skipped damaged checkpoint: ")
                raise CheckpointError(f"no intact checkpoint in {self.run.checkpoints} to resume from "
                                      f"(the newest: {newest})")
            self._resumed_from = None
            return
        validate(ckpt.meta, RESUMABLE, self.run.checkpoints / f"{ckpt.name}.json", CheckpointError)
        missing = sorted(set(optimizers) - set(ckpt.meta["optimizers"]))
        if missing:
            raise CheckpointError(f"checkpoint {ckpt.name} has no optimizer state for phase {missing[0]!r}")
        # Everything is checked before anything is loaded: a refused checkpoint changes nothing.
        state_dict = model_state(ckpt.tensors)
        check_model_tensors(model, state_dict, ckpt.name)
        for name, opt in optimizers.items():
            check_optimizer_tensors(f"optim/{name}", opt, ckpt.tensors, ckpt.meta["optimizers"][name], ckpt.name)
        rng = self._my_rng(ckpt.tensors)
        check_rng(rng, ckpt.name)
        data, saved_state = ckpt.meta["data"], ckpt.meta["state"]
        if saved_state["step"] != ckpt.meta["step"] or saved_state["epoch"] != data["epoch"]:
            raise CheckpointError(f"checkpoint {ckpt.name}: its state (step {saved_state['step']}, epoch "
                                  f"{saved_state['epoch']}) disagrees with its step and data position")
        # An epoch past --epochs is not refused here: that is the plan asked now (refused by steps in the
        # trainer, with the plan that would do), or a last step that drew past the final epoch (nothing to train).
        if data["cursor"] >= stream.batches_per_epoch:
            raise CheckpointError(f"checkpoint {ckpt.name}: data position {data['cursor']} is past the "
                                  f"{stream.batches_per_epoch} batches of an epoch of this dataset")
        scalers = ckpt.meta.get("precision") or {}
        for phase, scaler in scalers.items():
            if not (isinstance(scaler, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     for v in scaler.values())):
                raise CheckpointError(f"checkpoint {ckpt.name}: the loss scaler of {phase!r} is not numbers")
        try:
            model.load_state_dict(state_dict)
            for name, opt in optimizers.items():
                optimizer_from_tensors(f"optim/{name}", opt, ckpt.tensors, ckpt.meta["optimizers"][name])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {ckpt.name} does not fit this model: {exc}") from exc
        try:
            restore_rng(rng)
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {ckpt.name}: its RNG state is not valid ({exc})") from None
        precision.load_state_dict(scalers)
        state.load_json(ckpt.meta["state"])
        stream.epoch, stream.cursor = data["epoch"], data["cursor"]
        self.last = state.step
        self._resumed_from = ckpt.name

    def confirm_resume(self, state) -> None:
        """Once the caller has accepted what :meth:`restore` loaded: drop the metrics rows an interrupted
        session wrote past the checkpoint, and say where the run goes on from. Kept apart from restore so
        that a resume refused after loading (a plan shorter than the run) neither prints "resumed" nor
        touches metrics.jsonl."""
        self._truncate_metrics(state.step)
        if self._resumed_from is None:
            self.console.print("[yellow]no checkpoint yet: starting the run from step 0[/yellow]")
        else:
            self.console.print(f"[dim]resumed from {self._resumed_from} (epoch {state.epoch})[/dim]")
