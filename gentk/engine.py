"""The training loop: a model's phases, step after step, with metrics, samples and checkpoints.

The engine knows no model by name: it asks plugins through hooks for the
model (``build_model``), each phase's loss (``compute_loss``), what to do after
each optimizer step (``on_step``), and the held-out metrics (``on_epoch_end``).
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import torch
from rich.console import Console

from . import __version__
from .checkpoint import (latest_intact, model_state, optimizer_from_tensors, optimizer_to_tensors, restore_rng,
                         rng_tensors, save_checkpoint)
from .config import CUDAGRAPH_MODES, TrainConfig, identity_differences, resolve_device
from .data import BatchStream, DeviceImages, fit_images, load_dataset
from .distributed import Distributed
from .errors import CheckpointError, ConfigMismatchError, GentkError, PluginError, RunDirError, UsageError
from .images import save_grid
from .model import GenerativeModel, ModelSpec, Phase
from .options import build_options, option_defaults, options_dict
from .plugins import Registry, get_registry
from .precision import MixedPrecision
from .progress import TrainProgress
from .runs import LOCK, RunDir
from .state import TrainState

GRID_SAMPLES = 64
CONFIG_FIELDS = {f.name for f in fields(TrainConfig)} - {"model", "options"}


class TrainingInterrupted(GentkError):
    """SIGINT/SIGTERM: the current step finished and a checkpoint was written."""


class NonFiniteLoss(GentkError):
    """A loss became NaN or infinite."""


def build_model(registry: Registry, spec: ModelSpec, options: dict) -> GenerativeModel:
    opts = build_options(spec.options, options)
    model = registry.call("build_model", name=spec.name, options=opts)
    if model is None:
        raise PluginError(f"no plugin built model {spec.name!r} (its build_model hook returned None)")
    if not isinstance(model, GenerativeModel):
        raise PluginError(f"build_model for {spec.name!r} returned {type(model).__name__}, "
                          "not a gentk.GenerativeModel")
    return model


@contextmanager
def preserved_rng(device: torch.device):
    """Sampling grids and evaluating must not shift the training RNG stream."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        yield


class _Signals:
    """Turns SIGINT/SIGTERM into a flag the loop reads between steps."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool = False,
                 registry: Registry | None = None, console: Console | None = None, progress: bool = True):
        self.registry = registry or get_registry()
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.show_progress = progress
        self.resume = resume
        self.spec = self.registry.spec(config.model)
        config.validate()
        device = resolve_device(config.device)  # refuse a bad --device before touching the run dir
        self.dist, self.device = Distributed.from_env(device)
        config.world_size = self.dist.world
        if config.sync_bn and self.device.type != "cuda":
            raise UsageError("--sync-bn synchronises batch norm over GPUs (NCCL); it needs --device cuda")
        if not self.dist.is_main:
            self.console.quiet = True  # rank 0 speaks for the job
            self.show_progress = False
        self.config = config
        self.run = RunDir(run_dir)
        self._pending: list[tuple[int, int, dict]] = []
        self._key_phase: dict[str, str] = {}
        self._last_record: dict = {}
        self._window: tuple[int, float] | None = None  # (step, time) of the last throughput mark

    # -- set-up -----------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        run = self.run
        asked = self.config.to_dict()
        if self.resume:
            saved = run.read_config()
            diffs = identity_differences(saved, asked)
            if diffs:
                raise ConfigMismatchError(f"{run.path} was trained with other settings: {'; '.join(diffs)}; "
                                          "drop them to resume, or start a new --run-dir")
        elif run.path.exists() and not run.path.is_dir():
            raise RunDirError(f"--run-dir {run.path} is a file, not a folder")
        elif run.path.exists() and any(p.name != LOCK for p in run.path.iterdir()):
            raise RunDirError(f"{run.path} already exists; pass --resume to continue it, "
                              "or choose another --run-dir")
        try:
            run.lock()
            run.write_config(dict(asked, gentk_version=__version__))
        except OSError as exc:
            raise RunDirError(f"cannot write the run directory {run.path}: {exc.strerror or exc}") from exc

    def _load_data(self, model: GenerativeModel, device: torch.device):
        cfg = self.config
        # Rank 0 fills the dataset cache first, so ranks never download over each other.
        dataset = self.dist.call(lambda: load_dataset(cfg.data, cfg.data_root), main_only=True)
        if dataset is None:
            dataset = load_dataset(cfg.data, cfg.data_root)
        self.console.print(f"[dim]data: {dataset.source}[/dim]")
        train = fit_images(dataset.train, model.image_size, model.channels, model.fit)
        if cfg.data_fraction < 1:
            keep = max(2, int(round(len(train) * cfg.data_fraction)))
            subset = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))[:keep]
            train = train[subset.sort().values]
        test = fit_images(dataset.test, model.image_size, model.channels, model.fit)
        return DeviceImages(train, device, model.value_range), DeviceImages(test, device, model.value_range)

    # -- checkpoints ------------------------------------------------------------
    def _checkpoint(self, model, optimizers, state, stream) -> None:
        self._flush_metrics()
        rng = self._rng_tensors()  # a collective under torchrun: every rank's RNG goes in
        self.dist.call(lambda: self._write_checkpoint(model, optimizers, state, stream, rng), main_only=True)
        self._last_checkpoint = state.step

    def _write_checkpoint(self, model, optimizers, state, stream, rng: dict) -> None:
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        optim_meta = {}
        for name, opt in optimizers.items():
            t, meta = optimizer_to_tensors(f"optim/{name}", opt)
            tensors.update(t)
            optim_meta[name] = meta
        tensors.update(rng)
        meta = {"state": state.to_json(), "data": stream.position(), "optimizers": optim_meta,
                "precision": self.precision.state_dict(), "config": self.config.to_dict(),
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

    def _restore(self, model, optimizers, state, stream) -> None:
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
        self.precision.load_state_dict(ckpt.meta.get("precision") or {})
        state.load_json(ckpt.meta["state"])
        stream.epoch, stream.cursor = ckpt.meta["data"]["epoch"], ckpt.meta["data"]["cursor"]
        if self.dist.is_main:
            self.run.truncate_metrics(state.step)
        self._last_checkpoint = state.step
        self.console.print(f"[dim]resumed from {ckpt.name} (epoch {state.epoch})[/dim]")

    # -- metrics ----------------------------------------------------------------
    def _record(self, step: int, epoch: int, values: dict) -> None:
        self._pending.append((step, epoch, values))

    def _flush_metrics(self) -> None:
        """Read the buffered device scalars in one transfer and append them as JSON lines."""
        if not self._pending:
            return
        self._mark_throughput()
        tensors = [v for _, _, vals in self._pending for v in vals.values() if torch.is_tensor(v)]
        if tensors:
            stacked = torch.stack([t.detach().float().reshape(()) for t in tensors])
            # Under torchrun: the mean over ranks (every rank logs the same steps and keys).
            host = iter(self.dist.mean(stacked).tolist())
        else:
            host = iter(())
        lines = []
        for step, epoch, vals in self._pending:
            record = {"step": step, "epoch": epoch}
            record.update({k: (next(host) if torch.is_tensor(v) else v) for k, v in vals.items()})
            for key, value in record.items():
                if isinstance(value, float) and not math.isfinite(value) and key.endswith("loss"):
                    self._pending = []
                    self._write_lines(lines)
                    phase = self._key_phase.get(key, "?")
                    raise NonFiniteLoss(f"step {step}, phase {phase!r}: {key} is {value}; stopped. The last checkpoint "
                                        f"(step {self._last_checkpoint}) is intact; lower --lr, or "
                                        "pass --on-nan skip to skip such steps")
            lines.append(json.dumps(record))
            self._last_record = record
        self._pending = []
        self._write_lines(lines)

    def _write_lines(self, lines: list[str]) -> None:
        if lines and self.dist.is_main:
            with open(self.run.metrics_path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")

    # -- sampling and evaluation ------------------------------------------------
    def _save_grids(self, model, step: int, noise, real) -> None:
        if not self.dist.is_main:
            return
        model.eval()
        with preserved_rng(noise.device), torch.no_grad():
            grids = model.grids(noise, real)
        model.train()
        for name, images in grids.items():
            save_grid(model.to_unit(images), self.run.samples / f"{name}-{step:08d}.png")

    def _evaluate(self, model, state, test: DeviceImages) -> None:
        if not self.dist.is_main:  # held-out metrics are rank 0's; others go on training
            return
        model.eval()
        with preserved_rng(state.device), torch.no_grad():
            results = self.registry.call("on_epoch_end", model=model, state=state,
                                         eval_batches=test.batches(self.config.batch_size, self.config.eval_limit))
        model.train()
        merged = {}
        for result in results or []:
            if result:
                merged.update(result)
        if merged:
            # Plain floats: this record is rank 0's own and skips the average over ranks.
            merged = {k: (v.item() if torch.is_tensor(v) else v) for k, v in merged.items()}
            self._record(state.step, state.epoch, dict({"split": "test"}, **merged))

    # -- the loop ---------------------------------------------------------------
    def train(self) -> dict:
        try:
            self.dist.call(self._prepare_run_dir, main_only=True)
            return self._train()
        finally:
            self._pending = []
            if self.dist.is_main:
                self.run.unlock()
            self.dist.close()

    def _train(self) -> dict:
        cfg = self.config
        device = self.device
        dist = self.dist
        torch.manual_seed(cfg.seed)
        model = build_model(self.registry, self.spec, cfg.options)
        if cfg.sync_bn:
            for name, net in model.networks().items():
                setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(net))
        model = model.to(device)
        model.train()
        dist.broadcast_module(model)  # one starting point on every rank, whatever the plugin's init does
        train, test = self._load_data(model, device)
        phases: list[Phase] = model.phases(cfg.lr)
        nets = model.networks()
        optimizers, params = {}, {}
        for phase in phases:
            params[phase.name] = [p for net in phase.networks for p in nets[net].parameters()]
            optimizers[phase.name] = phase.optimizer(params[phase.name])
        self.params = params
        self.precision = MixedPrecision(cfg.precision, device, [p.name for p in phases])
        if cfg.compile:
            for net in nets.values():
                net.compile(mode=cfg.compile_mode)  # in place: parameter names, checkpoints and hooks see the same modules

        if dist.enabled:
            # Each rank draws its own noise (GAN fakes, VAE samples), reproducibly.
            torch.manual_seed(cfg.seed * 1_000_003 + dist.rank + 1)
        state = TrainState(cfg.batch_size, device, reduce=dist.mean,
                           adjust=lambda kl: self.registry.call("adjust_beta", model=model, state=state, kl=kl))
        stream = BatchStream(len(train), cfg.batch_size, cfg.seed, rank=dist.rank, world=dist.world)
        self._last_checkpoint = 0
        if self.resume:
            dist.call(lambda: self._restore(model, optimizers, state, stream))

        noise = model.noise(GRID_SAMPLES, torch.Generator().manual_seed(cfg.seed)).to(device)
        real = test.batch(torch.arange(min(32, len(test))))
        batches_per_step = sum(p.repeat for p in phases if p.uses_data) or 1
        total = math.ceil(cfg.epochs * stream.batches_per_epoch / batches_per_step)
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        if state.step == 0:
            self._save_grids(model, 0, noise, real)

        started = time.perf_counter() - state.elapsed
        self._window = (state.step, time.perf_counter())
        self._images_per_step = cfg.batch_size * batches_per_step * dist.world
        interrupted = None
        with _Signals() as signals, TrainProgress(total, state.step, self.show_progress, self.console) as bar:
            mark_step = cfg.compile and cfg.compile_mode in CUDAGRAPH_MODES and device.type == "cuda"
            while state.step < total and stream.epoch < cfg.epochs:
                if mark_step:  # CUDA-graph replays reuse their output memory: tell torch a new step begins
                    torch.compiler.cudagraph_mark_step_begin()
                values = self._step(model, phases, optimizers, state, train, stream)
                state.step += 1
                state.elapsed = time.perf_counter() - started
                self._record(state.step, state.epoch, values)
                if stream.epoch != state.epoch:
                    state.epoch = stream.epoch
                    self._evaluate(model, state, test)
                logged = state.step % cfg.log_every == 0
                if logged:
                    self._flush_metrics()
                    bar.show(self._last_record)
                bar.advance(1, state.epoch)
                if state.step % cfg.sample_every == 0:
                    self._save_grids(model, state.step, noise, real)
                if state.step % cfg.checkpoint_every == 0:
                    self._checkpoint(model, optimizers, state, stream)
                # Under torchrun the ranks agree to stop, at a log step (a signal may reach one rank only).
                if (logged or not dist.enabled) and dist.any(signals.received is not None):
                    interrupted = signals.received or signal.SIGTERM
                    break
            self._flush_metrics()
            if self._last_checkpoint != state.step:
                self._checkpoint(model, optimizers, state, stream)
        if interrupted is not None:
            code = 130 if interrupted == signal.SIGINT else 143
            err = TrainingInterrupted(f"interrupted at step {state.step}; checkpoint saved; resume with: "
                                      f"gentk train {cfg.model} --run-dir {self.run.path} --resume")
            err.exit_code = code
            raise err
        if state.step % cfg.sample_every != 0:
            self._save_grids(model, state.step, noise, real)
        if dist.is_main:
            self._plot()
        summary = {"steps": state.step, "epoch": state.epoch, "wall_time_s": round(state.elapsed, 3),
                   "run_dir": str(self.run.path), "last": self._last_record, "rank": dist.rank,
                   "world_size": dist.world}
        self.model = model
        return summary

    def _mark_throughput(self) -> None:
        """images_per_sec since the last flush, on the newest pending training row.

        Host clock: the flush that follows reads the device, so work still queued
        on a GPU counts in the next window; over a run the windows add up.
        """
        training = [(step, vals) for step, _, vals in self._pending if "split" not in vals]
        if not training or self._window is None or training[-1][0] <= self._window[0]:
            return
        (step, vals), (since, then) = training[-1], self._window
        now = time.perf_counter()
        vals["images_per_sec"] = round((step - since) * self._images_per_step / max(now - then, 1e-9), 1)
        self._window = (step, now)

    def _plot(self) -> None:
        """Figures are a convenience: a plotting failure is reported, never fatal."""
        from .report import write_plots

        try:
            write_plots(self.run.path)
        except Exception as exc:  # noqa: BLE001
            self.console.print(f"[yellow]plots not written ({type(exc).__name__}: {exc}); "
                               f"retry with `gentk report {self.run.path}`[/yellow]")

    def _step(self, model, phases, optimizers, state, train: DeviceImages, stream: BatchStream) -> dict:
        values: dict = {}
        multi = len(phases) > 1
        amp = self.precision
        for phase in phases:
            opt = optimizers[phase.name]
            sums: dict = {}
            for _ in range(phase.repeat):
                batch = train.batch(stream.next()) if phase.uses_data else None
                opt.zero_grad(set_to_none=True)
                with amp.autocast():
                    out = self.registry.call("compute_loss", model=model, phase=phase.name, batch=batch, state=state)
                if out is None or "loss" not in out:
                    raise PluginError(f"no plugin returned a loss for model {self.spec.name!r}, "
                                      f"phase {phase.name!r}")
                # --on-nan skip reads the loss every step (a device sync) to drop bad updates;
                # under torchrun all ranks skip together.
                if self.config.on_nan == "skip" and self.dist.any(not bool(torch.isfinite(out["loss"]))):
                    opt.zero_grad(set_to_none=True)
                    state.skipped_nonfinite += 1
                    values["skipped_nonfinite"] = state.skipped_nonfinite
                    continue
                amp.backward(phase.name, out["loss"])
                self.dist.average_gradients(self.params[phase.name])
                amp.step(phase.name, opt)
                self.registry.call("on_step", model=model, phase=phase.name, state=state, metrics=out)
                for key, value in out.items():
                    value = value.detach() if torch.is_tensor(value) else value
                    sums[key] = sums[key] + value if key in sums else value
            for key, value in sums.items():
                name = f"{phase.name}_{key}" if multi else key
                values[name] = value / phase.repeat if phase.repeat > 1 else value
                self._key_phase[name] = phase.name
        return values


def train(model: str, run_dir: str | Path | None = None, *, resume: bool = False, progress: bool = True,
          console: Console | None = None, registry: Registry | None = None, **settings) -> dict:
    """Train ``model`` (a registered name) and return a summary; the Python face of `gentk train`.

    ``settings`` are TrainConfig fields (epochs, max_steps, batch_size, lr, seed,
    data, data_root, device, ...), the model's own options by name, and
    ``preset``. Omitted epochs, batch_size, lr and data_fraction take the
    model's defaults; with ``resume=True`` omitted settings keep the run's own.
    """
    registry = registry or get_registry()
    spec = registry.spec(model)
    if resume:
        if run_dir is None:
            raise UsageError("--resume needs --run-dir: the run to continue")
        base = RunDir(run_dir).read_config()
    else:
        base = None
    config = make_config(spec, settings, base)
    if run_dir is None:
        run_dir = default_run_dir(model)
    trainer = Trainer(config, Path(run_dir), resume=resume, registry=registry, console=console, progress=progress)
    return trainer.train()


def make_config(spec: ModelSpec, settings: dict, base: dict | None = None) -> TrainConfig:
    """A TrainConfig from the model's defaults (or a resumed run's config), a preset, and settings."""
    settings = {k: v for k, v in settings.items() if v is not None}
    preset = settings.pop("preset", None)
    if base is not None:
        values = {k: v for k, v in TrainConfig.from_dict(base).to_dict().items() if k not in ("model", "options")}
        option_values = dict(base.get("options") or {})
    else:
        values = {"epochs": spec.defaults.epochs, "batch_size": spec.defaults.batch_size,
                  "lr": spec.defaults.lr, "data_fraction": spec.defaults.data_fraction}
        option_values = option_defaults(spec.options)
    if preset is not None:
        if preset not in spec.presets:
            raise UsageError(f"unknown --preset {preset!r} for {spec.name}; "
                             f"available: {', '.join(spec.presets) or 'none'}")
        for key, value in spec.presets[preset].items():
            (values if key in CONFIG_FIELDS else option_values)[key] = value
    for key, value in settings.items():
        (values if key in CONFIG_FIELDS else option_values)[key] = value
    options = options_dict(build_options(spec.options, option_values))
    return TrainConfig(model=spec.name, options=options, **values)


def default_run_dir(model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model}-{stamp}"
