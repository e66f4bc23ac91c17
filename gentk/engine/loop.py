"""The training loop: a model's phases, step after step, with metrics, samples and checkpoints.

The engine knows no model by name: the model comes from the registry, and each
phase's loss, what happens after each optimizer step, the KL weight and the
held-out metrics come through the model hooks (whose default is the model's
own methods).
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from ..checkpoint import list_checkpoints
from ..config import CUDAGRAPH_MODES, TrainConfig, identity_differences, make_config, plugin_differences, resolve_device
from ..data import BatchStream, DeviceImages, load_dataset
from ..data.memory import human, max_data_memory
from ..data.prepare import StreamedImages
from ..distributed import Distributed
from ..errors import ConfigMismatchError, GentkError, PluginError, RunDirError, UsageError
from ..images import save_grid
from ..loggers import LoggerSet
from ..model import GenerativeModel, Phase
from ..options import option_defaults
from ..plugins import Registry, get_registry
from ..precision import MixedPrecision
from ..progress import TrainProgress
from ..runlist import read_status, write_status
from ..runs import LOCK, RunDir
from ..state import TrainState
from ..version import __version__
from .checkpoints import Checkpointer
from .metrics import MetricsLog
from .signals import StopSignals, TrainingInterrupted

GRID_SAMPLES = 64
#: How often a running run's status.json is brought up to date (at a log step).
STATUS_EVERY_S = 10.0


@contextmanager
def preserved_rng(device: torch.device):
    """Sampling grids and evaluating must not shift the training RNG stream."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        yield


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool = False,
                 registry: Registry | None = None, console: Console | None = None, progress: bool = True):
        self.registry = registry or get_registry()
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.show_progress = progress
        self.resume = resume
        self.spec = self.registry.spec(config.model)
        config.validate()
        for name in config.logger:
            self.registry.logger(name)  # an unknown --logger is refused before anything is loaded
        device = resolve_device(config.device)  # refuse a bad --device before touching the run dir
        self.dist, self.device = Distributed.from_env(device)
        config.world_size = self.dist.world
        config.plugins = self.registry.acting_plugins(config.model)
        if config.sync_bn and self.device.type != "cuda":
            raise UsageError("--sync-bn synchronises batch norm over GPUs (NCCL); it needs --device cuda")
        if not self.dist.is_main:
            self.console.quiet = True  # rank 0 speaks for the job
            self.show_progress = False
        own = self.registry.model_plugin(config.model)
        replaced = self.registry.replaced.get(("register_models", config.model))
        if replaced:
            self.console.print(f"[dim]model {config.model!r} is plugin {own!r}'s, which replaces plugin "
                               f"{replaced!r}'s[/dim]", highlight=False)
        others = [p["name"] for p in config.plugins if p["name"] != own]
        if others:  # say who else changes this model: a flag it overrides would otherwise look ignored
            self.console.print(f"[dim]plugins acting on {config.model}: {', '.join(others)} (gentk plugins)[/dim]",
                               highlight=False)
        for name, info in sorted(self.registry.plugins.items()):
            if info.error:
                self.console.print(f"[yellow]warning: plugin {name!r}: {escape(info.error)}[/yellow]", highlight=False)
        self.config = config
        self.run = RunDir(run_dir)
        self.metrics: MetricsLog | None = None
        self.loggers = LoggerSet([])
        self.planned: int | None = None  # steps the run will take, once the data is known
        self._status_written = 0.0
        self._state: TrainState | None = None

    # -- set-up -----------------------------------------------------------------
    def _check_run_dir(self) -> None:
        """Refuse a resume that would change the run, or a new run over an existing one (reads only)."""
        run = self.run
        asked = self.config.to_dict()
        if self.resume:
            run.check_layout()
            saved = run.read_config()
            if saved.get("fit") is None:  # runs before gentk recorded the model's own fit
                saved["fit"] = self.model.fit
            # An option the model gained after the run was written: the run trained with its default
            # (None included: --error-clip none). Not channels: that one is resolved from the data,
            # and the checkpoint's tensor checks tell whether the networks still fit.
            saved_options = saved.setdefault("options", {})
            for name, default in option_defaults(self.spec.options).items():
                if name not in saved_options and name != "channels":
                    saved_options[name] = default
            diffs = identity_differences(saved, asked)
            if "plugins" in saved:  # runs from before gentk recorded plugins have nothing to compare
                diffs += plugin_differences(saved["plugins"], asked["plugins"])
            if diffs:
                raise ConfigMismatchError(f"{run.path} was trained with other settings: {'; '.join(diffs)}; "
                                          "restore them to resume, or start a new --run-dir")
        elif run.path.exists() and not run.path.is_dir():
            raise RunDirError(f"--run-dir {run.path} is a file, not a folder")
        elif run.path.exists() and any(p.name != LOCK for p in run.path.iterdir()):
            raise RunDirError(f"{run.path} already exists; pass --resume to continue it, "
                              "or choose another --run-dir")

    def _prepare_run_dir(self) -> None:
        run = self.run
        try:
            run.lock()
            if not self.resume:  # a resumed run's config is rewritten once its checkpoint has loaded
                self._write_config()
        except OSError as exc:
            raise RunDirError(f"cannot write the run directory {run.path}: {exc.strerror or exc}") from exc

    def _write_config(self) -> None:
        self.run.write_config(dict(self.config.to_dict(), gentk_version=__version__, display=self._display()))

    def _display(self) -> dict:
        """What `gentk report` and the progress bar show, as the model declares it (kept in
        config.json so that plots can be redrawn without the model's plugin)."""
        model = self.model
        multi = len(self.phases) > 1
        progress = model.progress_metrics or tuple(f"{p.name}_loss" if multi else "loss" for p in self.phases)
        return {"phases": [p.name for p in self.phases] if multi else [], "progress": list(progress),
                "figures": {name: [list(panel) for panel in panels] for name, panels in model.figures.items()}}

    def _open_data(self):
        """The dataset as listed (a folder's files, a downloaded array): its labels and channels,
        before anything is decoded. Rank 0 first, so ranks never fetch over each other."""
        cfg = self.config
        dataset = self.dist.call(lambda: load_dataset(cfg.data, cfg.data_root, self.registry), main_only=True)
        if dataset is None:
            dataset = load_dataset(cfg.data, cfg.data_root, self.registry)
        cfg.data_fingerprint = dataset.fingerprint
        if dataset.data_name and cfg.data.startswith("folder:"):  # a relative path ties a run to this folder
            cfg.data = dataset.data_name
        if dataset.num_classes is not None:
            cfg.class_names = list(dataset.class_names or map(str, range(dataset.num_classes)))
        options = cfg.options
        if "channels" in options and options["channels"] is None:  # the model's --channels: from the data
            options["channels"] = dataset.channels
        return dataset

    def _load_data(self, model: GenerativeModel, device: torch.device, dataset):
        cfg = self.config
        classes = dataset.num_classes
        if model.conditional and classes is None:
            raise UsageError(f"model {cfg.model} is conditional and needs labelled data; --data {cfg.data} has "
                             "no labels (use mnist, fashion-mnist, cifar10, or a folder with one subfolder per class)")
        if model.conditional and classes > model.num_classes:
            raise UsageError(f"--data {cfg.data} has {classes} classes; model {cfg.model} was built for "
                             f"{model.num_classes}")
        fit = cfg.fit

        def fitted():
            return dataset.fitted(model.image_size, model.channels, fit, self.console, self.show_progress)

        data = self.dist.call(fitted, main_only=True) or fitted()  # rank 0 fills the cache; the others open it
        rows = None
        if cfg.data_fraction < 1:
            keep = max(2, int(round(len(data.train) * cfg.data_fraction)))
            rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed))[:keep].sort().values
            rows = rows.numpy()
        used = len(data.train) if rows is None else len(rows)
        if cfg.batch_size < 2 and not (cfg.sync_bn and self.dist.world > 1) and any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise UsageError(f"--batch-size {cfg.batch_size}: model {cfg.model} has batch-norm layers, which need "
                             "at least 2 images per batch to train; use --batch-size 2 or more")
        kept = "" if rows is None else f" (--data-fraction {cfg.data_fraction} of {len(data.train)}, at least 2)"
        if cfg.batch_size > used:
            raise UsageError(f"--batch-size {cfg.batch_size} is more than the {used} training images{kept} of "
                             f"--data {cfg.data}; use at most --batch-size {used}")
        row_bytes = data.train.nbytes // max(1, len(data.train))
        nbytes = used * row_bytes + (0 if data.test is data.train else data.test.nbytes)
        limit = max_data_memory(cfg.max_data_memory, device)
        streamed = nbytes > limit
        where = (f"{human(nbytes)}, read from disk batch by batch (above --max-data-memory {human(limit)})"
                 if streamed else f"{human(nbytes)} on {device.type}")
        note = f"; {data.note}" if data.note else ""
        if rows is not None:
            note += f"; training on {used} of the {len(data.train)} (--data-fraction {cfg.data_fraction})"
        self.console.print(f"[dim]data: {escape(dataset.source)}{escape(note)}; {where}[/dim]", highlight=False)
        train_labels = data.train_labels if rows is None or data.train_labels is None else data.train_labels[rows]
        if streamed:
            return (StreamedImages(data.train, device, model.value_range, _labels(train_labels), classes, rows),
                    StreamedImages(data.test, device, model.value_range, _labels(data.test_labels), classes))
        train = _in_memory(data.train)
        test = train if data.test is data.train else _in_memory(data.test)
        if rows is not None:
            train = train[rows]
        return (DeviceImages(torch.from_numpy(train), device, model.value_range, _labels(train_labels), classes),
                DeviceImages(torch.from_numpy(test), device, model.value_range, _labels(data.test_labels), classes))

    def _build(self):
        """The model on the device, its phases and one optimizer per phase."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model = self.registry.build_model(self.spec, cfg.options)
        if cfg.sync_bn:
            for name, net in model.networks().items():
                setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(net))
        model = model.to(self.device)
        model.train()
        self.dist.broadcast_module(model)  # one starting point on every rank, whatever the plugin's init does
        with self.registry.model_code(cfg.model, "phases"):
            phases: list[Phase] = model.phases(cfg.lr)
            nets = model.networks()
            self.params = {p.name: [q for net in p.networks for q in nets[net].parameters()] for p in phases}
            optimizers = {p.name: p.optimizer(self.params[p.name]) for p in phases}
            # Each group's own rate as the phase built it (before a resume loads a decayed one).
            self.base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in optimizers.items()}
            self.frozen = frozen_parameters(model, phases, self.params)
        if cfg.compile:
            for net in nets.values():
                net.compile(mode=cfg.compile_mode)  # in place: parameter names, checkpoints and hooks see the same modules
        return model, phases, optimizers

    # -- sampling and evaluation ------------------------------------------------
    def _save_grids(self, model, step: int, noise, real) -> None:
        if not self.dist.is_main:
            return
        model.eval()
        with preserved_rng(noise.device), torch.no_grad(), self.registry.model_code(self.config.model, "grids"):
            grids = model.grids(noise, real)
            grids = {name: model.to_unit(images) for name, images in grids.items()}
        model.train()
        for name, images in grids.items():
            self.loggers.log_images(step, name, save_grid(images, self.run.samples / f"{name}-{step:08d}.png"))

    def _evaluate(self, model, state, test: DeviceImages) -> None:
        if not self.dist.is_main:  # held-out metrics are rank 0's; others go on training
            return
        model.eval()
        with preserved_rng(state.device), torch.no_grad():
            merged = self.registry.model_hook("on_epoch_end", model, state=state,
                                              eval_batches=test.batches(self.config.batch_size, self.config.eval_limit))
        model.train()
        if merged:
            # Plain floats: this record is rank 0's own and skips the average over ranks.
            merged = {k: (v.item() if torch.is_tensor(v) else v) for k, v in merged.items()}
            self.metrics.record(state.step, state.epoch, dict({"split": "test"}, **merged))

    # -- the loop ---------------------------------------------------------------
    def train(self) -> dict:
        # Everything that can be refused is checked before the run directory is touched.
        dataset = self._open_data()
        self.model, self.phases, self.optimizers = self._build()
        self.config.fit = self.config.fit or self.model.fit  # recorded: the run names what it was fitted with
        self.dist.call(self._check_run_dir, main_only=True)
        data = self._load_data(self.model, self.device, dataset)
        existed = self.run.path.exists()
        try:
            self.dist.call(self._prepare_run_dir, main_only=True)
            return self._train(self.model, self.phases, self.optimizers, *data)
        except BaseException as exc:
            self._forget_unstarted_run(existed)
            self._ended(exc)
            raise
        finally:
            for images in data:
                if isinstance(images, StreamedImages):
                    images.close()
            self.loggers.close()
            if self.metrics is not None:
                self.metrics.discard()
            if self.dist.is_main:
                self.run.unlock()
            self.dist.close()

    def _status(self, state: str, step: int, error: str | None = None) -> None:
        """RUN/status.json, for `gentk runs` (rank 0; a run directory this session prepared)."""
        if self.dist.is_main and self.planned is not None and self.run.path.is_dir():
            self._status_written = time.monotonic()
            try:
                write_status(self.run, state, step, self.planned, error)
            except OSError:  # informational: a full disk is reported by the writes that matter
                pass

    def _progress_status(self, step: int) -> None:
        """At log steps, at most every STATUS_EVERY_S: how far a running run is (a small atomic write)."""
        if time.monotonic() - self._status_written >= STATUS_EVERY_S:
            self._status("running", step)

    def _ended(self, exc: BaseException) -> None:
        step = self._state.step if self._state is not None else 0
        if isinstance(exc, TrainingInterrupted):
            self._status("interrupted", step)
        elif isinstance(exc, Exception):
            self._status("failed", step, f"{type(exc).__name__}: {exc}"[:2000])

    def _open_loggers(self, resume_step: int | None) -> LoggerSet:
        if not self.config.logger or not self.dist.is_main:
            return LoggerSet([])
        opened = []
        try:
            for name in dict.fromkeys(self.config.logger):
                spec, plugin = self.registry.logger(name)
                try:
                    opened.append((name, spec.open(self.run.path, self.config.to_dict(), resume_step)))
                except GentkError:
                    raise
                except Exception as exc:
                    raise PluginError(f"plugin {plugin!r} failed to open logger {name!r}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            LoggerSet(opened).close()
            raise
        loggers = LoggerSet(opened)
        cfg = self.config.to_dict()
        options = {f"options.{k}": v for k, v in cfg.pop("options").items()}
        loggers.log_hparams({**{k: v for k, v in cfg.items() if not isinstance(v, (list, dict))}, **options})
        return loggers

    def _log_rows(self, rows: list[dict]) -> None:
        for row in rows:
            values = {k: v for k, v in row.items() if k not in ("step", "epoch", "split")
                      and isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.loggers.log_metrics(row["step"], values, row.get("split", "train"))

    def _forget_unstarted_run(self, existed: bool) -> None:
        """A new run that failed during start-up, before its first step was done, has nothing to
        keep: remove what it wrote, so that the same command can simply be run again. A run that
        trained a step keeps its directory (metrics, samples, status.json say what happened)."""
        try:
            trained = self._state is not None and self._state.step > 0
            if self.resume or trained or not self.dist.is_main or list_checkpoints(self.run.checkpoints):
                return
        except GentkError:  # the run directory itself is in question: leave it as it is
            return
        if not existed:
            shutil.rmtree(self.run.path, ignore_errors=True)
            return
        for child in self.run.path.iterdir():  # an empty folder the user made: empty it again
            if child.name != LOCK:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)

    def _note_nothing_to_train(self, step: int, total: int, by_epochs: int) -> None:
        """A resume with nothing left to do says why (a --max-steps that still caps a longer --epochs);
        ``by_epochs``: the steps --epochs alone gives."""
        cfg = self.config
        if cfg.max_steps is not None and cfg.max_steps < by_epochs:
            why = f"--max-steps {cfg.max_steps} caps --epochs {cfg.epochs}: give a larger --max-steps to go on"
        elif cfg.max_steps is not None and cfg.max_steps == by_epochs:
            why = "give a larger --epochs and --max-steps to go on"
        else:
            why = f"--epochs {cfg.epochs} ends it: give a larger --epochs to go on"
        self.console.print(f"[yellow]note: nothing to train: the run has trained {step} of its {total} planned "
                           f"steps ({why})[/yellow]", highlight=False)

    def _note_a_new_schedule_length(self, step: int, total: int) -> None:
        """Say so when a resume changes the length a decaying rate is spread over (``--epochs``/``--max-steps``
        extended): the curve is recomputed, so the rate jumps at the resumed step. The old length comes
        from status.json; without one there is nothing to compare."""
        try:
            before = (read_status(self.run) or {}).get("planned_steps")
        except GentkError:  # a damaged status file: not worth refusing a resume over
            return
        if not isinstance(before, int) or before == total or not 0 < step < total:
            return
        was, now = lr_scale(self.config.lr_schedule, step, before), lr_scale(self.config.lr_schedule, step, total)
        if was == now:  # a constant rate, or the same factor either way
            return
        self.console.print(f"[yellow]note: the {self.config.lr_schedule} schedule now spans {total} steps (was "
                           f"{before}): step {step + 1} runs at {now:.3g} x --lr, where the old curve had "
                           f"{was:.3g}[/yellow]", highlight=False)

    def _train(self, model, phases, optimizers, train: DeviceImages, test: DeviceImages) -> dict:
        cfg, dist = self.config, self.dist
        self.precision = MixedPrecision(cfg.precision, self.device, [p.name for p in phases])
        if dist.enabled:
            # Each rank draws its own noise (GAN fakes, VAE samples), reproducibly.
            torch.manual_seed(cfg.seed * 1_000_003 + dist.rank + 1)
        state = TrainState(cfg.batch_size, self.device, reduce=dist.mean,
                           adjust=lambda kl: self.registry.model_hook("adjust_beta", model, state=state, kl=kl))
        stream = BatchStream(len(train), cfg.batch_size, cfg.seed, rank=dist.rank, world=dist.world)
        self._state = state
        batches_per_step = sum(p.repeat for p in phases if p.uses_data) or 1
        self.metrics = MetricsLog(self.run.metrics_path, dist, cfg.batch_size * batches_per_step * dist.world,
                                  on_rows=self._log_rows)
        self.checkpoints = Checkpointer(self.run, dist, cfg, self.console)
        steps_per_epoch = stream.batches_per_epoch / batches_per_step
        by_epochs = math.ceil(cfg.epochs * steps_per_epoch)
        total = by_epochs if cfg.max_steps is None else min(by_epochs, cfg.max_steps)
        epochs_end_it = cfg.max_steps is not None and cfg.max_steps > by_epochs  # more steps asked than epochs give
        if self.resume:
            dist.call(lambda: self.checkpoints.restore(model, optimizers, state, stream, self.precision))
            if state.step > total:  # before config.json is rewritten: a refused resume changes nothing
                raise ConfigMismatchError(
                    f"{self.run.path} has trained {state.step} steps, more than the {total} planned now (--epochs "
                    f"{cfg.epochs}" + (f", --max-steps {cfg.max_steps}" if cfg.max_steps is not None else "")
                    + f", {steps_per_epoch:g} steps an epoch); resume with a plan of at "
                      f"least {state.step} steps, or leave --epochs and --max-steps out to keep the run's own")
            dist.call(lambda: self.checkpoints.confirm_resume(state))
            if dist.is_main:
                self._note_a_new_schedule_length(state.step, total)
                if state.step >= total or stream.epoch >= cfg.epochs:
                    self._note_nothing_to_train(state.step, total, by_epochs)
            dist.call(self._write_config, main_only=True)  # (a refused resume changed nothing)
        if epochs_end_it and state.step < total and dist.is_main:
            self.console.print(f"[yellow]note: --epochs {cfg.epochs} ends the run at step {total}, before "
                               f"--max-steps {cfg.max_steps}; give a larger --epochs to train that far[/yellow]",
                               highlight=False)
        self.loggers = self._open_loggers(state.step if self.resume else None)

        with self.registry.model_code(cfg.model, "noise"):
            noise = model.noise(GRID_SAMPLES, torch.Generator().manual_seed(cfg.seed)).to(self.device)
        real = test.batch(torch.arange(min(32, len(test))))
        self.planned = total
        first_step, first_elapsed = state.step, state.elapsed
        self._status("running", state.step)
        if state.step == 0:
            self._save_grids(model, 0, noise, real)

        started = time.perf_counter() - state.elapsed
        self.metrics.start(state.step)
        interrupted = None
        mark_step = cfg.compile and cfg.compile_mode in CUDAGRAPH_MODES and self.device.type == "cuda"
        with StopSignals() as signals, TrainProgress(total, state.step, self.show_progress, self.console,
                                                     self._display()["progress"]) as bar:
            while state.step < total and stream.epoch < cfg.epochs:
                if mark_step:  # CUDA-graph replays reuse their output memory: tell torch a new step begins
                    torch.compiler.cudagraph_mark_step_begin()
                scale = lr_scale(cfg.lr_schedule, state.step, total)
                if scale is not None:
                    self._set_lr(optimizers, scale)
                values = self._step(model, phases, optimizers, state, train, stream)
                if scale is not None:
                    values["lr"] = cfg.lr * scale
                state.step += 1
                state.elapsed = time.perf_counter() - started
                self.metrics.record(state.step, state.epoch, values)
                if stream.epoch != state.epoch:
                    state.epoch = stream.epoch
                    self._evaluate(model, state, test)
                logged = state.step % cfg.log_every == 0
                if logged:
                    self.metrics.flush(self.checkpoints.last)
                    bar.show(self.metrics.last)
                    self._progress_status(state.step)
                bar.advance(1, state.epoch)
                if state.step % cfg.sample_every == 0:
                    self._save_grids(model, state.step, noise, real)
                if state.step % cfg.checkpoint_every == 0:
                    self._checkpoint(model, optimizers, state, stream)
                # Under torchrun the ranks agree to stop, at a log step (a signal may reach one rank only).
                if (logged or not dist.enabled) and dist.any(signals.received is not None):
                    interrupted = signals.received or signal.SIGTERM
                    break
            self.metrics.flush(self.checkpoints.last)
            if self.checkpoints.last != state.step:
                self._checkpoint(model, optimizers, state, stream)
        if interrupted is not None:
            raise TrainingInterrupted(f"interrupted at step {state.step}; checkpoint saved; resume with: "
                                      f"gentk train {cfg.model} --run-dir {self.run.path} --resume", interrupted)
        if state.step % cfg.sample_every != 0:
            self._save_grids(model, state.step, noise, real)
        if dist.is_main:
            self._plot()
        self._status("finished", state.step)
        return {"steps": state.step, "steps_this_session": state.step - first_step, "resumed": self.resume,
                "epoch": state.epoch, "wall_time_s": round(state.elapsed, 3),
                "wall_time_this_session_s": round(state.elapsed - first_elapsed, 3),
                "run_dir": str(self.run.path), "last": self.metrics.last, "rank": dist.rank,
                "world_size": dist.world}

    def _set_lr(self, optimizers, scale: float) -> None:
        for name, opt in optimizers.items():
            for group, base in zip(opt.param_groups, self.base_lrs[name]):
                group["lr"] = base * scale

    def _checkpoint(self, model, optimizers, state, stream) -> None:
        self.metrics.flush(self.checkpoints.last)
        self.checkpoints.save(model, optimizers, state, stream, self.precision)
        self._status("running", state.step)

    def _plot(self) -> None:
        """Figures are a convenience: a plotting failure is reported, never fatal."""
        from ..report import write_plots

        try:
            write_plots(self.run.path)
        except Exception as exc:  # noqa: BLE001
            self.console.print(f"[yellow]plots not written ({type(exc).__name__}: {exc}); "
                               f"retry with `gentk report {self.run.path}`[/yellow]")

    def _step(self, model, phases, optimizers, state, train: DeviceImages, stream: BatchStream) -> dict:
        values: dict = {}
        multi = len(phases) > 1
        for phase in phases:
            with frozen(self.frozen[phase.name]):
                sums = self._phase(model, phase, optimizers[phase.name], state, train, stream, values)
            for key, value in sums.items():
                name = f"{phase.name}_{key}" if multi else key
                values[name] = value / phase.repeat if phase.repeat > 1 else value
                self.metrics.phase_of[name] = phase.name
        return values

    def _phase(self, model, phase: Phase, opt, state, train: DeviceImages, stream: BatchStream, values: dict) -> dict:
        """One phase's ``repeat`` updates; the sums of what its losses returned."""
        amp = self.precision
        sums: dict = {}
        for _ in range(phase.repeat):
            if phase.uses_data:
                batch = train.batch(stream.next())
                if train.streamed:  # read the next batch from disk while this one trains
                    train.prefetch(stream.peek())
            else:
                batch = None
            opt.zero_grad(set_to_none=True)
            with amp.autocast():
                out = self.registry.model_hook("compute_loss", model, phase=phase.name, batch=batch, state=state)
            if out is None:
                raise PluginError(f"no plugin returned a loss for model {self.spec.name!r}, "
                                  f"phase {phase.name!r}")
            # --on-nan skip reads the loss every step (a device sync) to drop bad updates;
            # under torchrun all ranks skip together.
            if self.config.on_nan == "skip" and self.dist.any(not bool(torch.isfinite(out["loss"]))):
                opt.zero_grad(set_to_none=True)
                state.skipped_nonfinite += 1
                values["skipped_nonfinite"] = state.skipped_nonfinite
                continue
            try:
                amp.backward(phase.name, out["loss"])
            except RuntimeError as exc:
                if self.config.compile and "double backward" in str(exc):
                    raise UsageError(f"model {self.spec.name!r}, phase {phase.name!r}: its loss takes a gradient of "
                                     "a gradient (e.g. --r1, --gradient-penalty), which torch.compile cannot train "
                                     "through; run without --compile") from None
                raise
            self.dist.average_gradients(self.params[phase.name])
            amp.step(phase.name, opt)
            self.registry.model_hook("on_step", model, phase=phase.name, state=state, metrics=out)
            for key, value in out.items():
                value = value.detach() if torch.is_tensor(value) else value
                sums[key] = sums[key] + value if key in sums else value
        return sums


def lr_scale(schedule: str, step: int, total: int) -> float | None:
    """The factor on each optimizer's rate for the step after ``step`` steps of ``total``; None: constant.

    A function of the step alone, so a resumed run continues the same curve (the optimizers'
    own rates are set from it before every step).
    """
    if schedule == "constant":
        return None
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ValueError(f"unknown lr schedule {schedule!r}")


def frozen_parameters(model: torch.nn.Module, phases: list[Phase], params: dict) -> dict[str, list]:
    """Per phase, the model's trainable parameters it does not update (none where it opts out)."""
    out = {}
    for phase in phases:
        own = {id(q) for q in params[phase.name]}
        out[phase.name] = ([q for q in model.parameters() if q.requires_grad and id(q) not in own]
                           if phase.freeze_others else [])
    return out


@contextmanager
def frozen(parameters: list):
    """``requires_grad`` off for these parameters while a phase runs, then as it was (also on errors)."""
    was = [q.requires_grad for q in parameters]
    for q in parameters:
        q.requires_grad_(False)
    try:
        yield
    finally:
        for q, flag in zip(parameters, was):
            q.requires_grad_(flag)


def _in_memory(images):
    """A split as one array in RAM (read whole from the on-disk cache if it is there)."""
    return images.load() if hasattr(images, "load") else images


def _labels(labels):
    return torch.from_numpy(labels.astype("int64")) if labels is not None else None


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
        if settings.get("preset") is not None:
            raise UsageError(f"--preset {settings['preset']} sets what a run trains, and a resumed run keeps its "
                             "own settings: leave --preset out (extend a run with --epochs or --max-steps)")
        base = RunDir(run_dir).read_config()
        if base["model"] != model:
            raise UsageError(f"{run_dir} is a {base['model']} run: resume it with gentk train {base['model']} "
                             f"--run-dir {run_dir} --resume")
    else:
        base = None
    trainer = None
    try:
        config = make_config(spec, settings, base)
        if run_dir is None:
            run_dir = default_run_dir(model)
        trainer = Trainer(config, Path(run_dir), resume=resume, registry=registry, console=console, progress=progress)
        return trainer.train()
    except UsageError as error:
        if trainer is not None and trainer.planned is not None:  # refused while training: not a setting's fault
            raise
        raise _naming_the_preset(error, spec, settings) from None


def _naming_the_preset(error: UsageError, spec, settings: dict) -> UsageError:
    """``error`` with the preset named when it refuses a value the preset set and the user did not
    (``--batch-size 32 is more than ...``): the user never typed that flag."""
    from ..options import naming_the_source

    preset = settings.get("preset")
    set_by_preset = [key for key in spec.presets.get(preset, {}) if settings.get(key) is None]  # no preset: none
    return naming_the_source(error, set_by_preset, f"--preset {preset}")


def default_run_dir(model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model}-{stamp}"
