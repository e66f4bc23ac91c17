"""The `gentk` command line: a thin click layer over the Python API.

Every GentkError becomes one red line on stderr and its exit code (1, or 2 for
usage errors); GENTK_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .version import __version__
from .errors import GentkError, UsageError
from .options import flag_name, naming_the_source

err_console = Console(stderr=True, soft_wrap=True)
out_console = Console()


def print_table(table) -> None:
    """A table on stdout: fitted to a terminal, whole when piped to a file or another program (rich
    would fold it at 80 columns, splitting values such as ``batch_size=16`` across lines)."""
    # isatty, not rich's is_terminal: FORCE_COLOR (set by many CI systems) makes that True in a pipe.
    console = out_console if sys.stdout.isatty() else Console(width=100_000)
    console.print(table)


def _registry():
    from .plugins import get_registry

    return get_registry()


# -- train: one subcommand per registered model, options from its dataclass ----------

#: `gentk train` options that are not TrainConfig fields (the rest come from TrainConfig's metadata).
RUN_OPTIONS = [
    ("--config", dict(type=click.Path(dir_okay=False), default=None, is_eager=True, expose_value=False,
                      callback=lambda ctx, param, value: _read_config(ctx, value),
                      help="Settings from a TOML file, or a run's config.json to repeat it: keys are the option "
                           "names (batch_size, lr, ...); options given here override the file.")),
    ("--run-dir", dict(type=click.Path(), default=None, help="Where the run goes (default: runs/MODEL-DATE-TIME).")),
    ("--resume", dict(is_flag=True, default=False, help="Continue the run in --run-dir from its latest intact checkpoint.")),
    ("--nproc", dict(type=int, default=None,
                     help="Train with N processes on this machine (torchrun's machinery; N GPUs, or N CPU "
                          "processes with gloo); each takes --batch-size images. Default: 1, or torchrun's.")),
    ("--progress/--no-progress", dict(default=True, show_default=True, help="Show a progress bar.")),
]


def _read_config(ctx, value) -> None:
    """--config: the file's settings become the command's defaults, so flags still win."""
    if value is None:
        return
    from .config_file import read_config_file

    settings = read_config_file(value, _registry().spec(ctx.command.name))
    ctx.meta["gentk.config_file"] = value  # so an error about a setting it made can name it
    ctx.default_map = {k: (tuple(v) if isinstance(v, list) else (v,) if k == "preset" else v)
                       for k, v in settings.items()}  # --preset is repeatable (to refuse a second): a tuple


def _check_preset(spec, values):
    """The one preset asked for, or None. --preset is declared repeatable only so that a second one is
    refused: click would otherwise keep the last and drop the first without a word."""
    from .config_file import preset_problem

    if len(values) > 1:
        raise click.BadParameter(f"given twice ({', '.join(values)}); a run takes one preset: pick one, and give "
                                 "any option you want changed beside it (an option given beats the preset's value)")
    value = values[0] if values else None
    if value is not None and (problem := preset_problem(spec, value)):
        raise click.BadParameter(problem)
    return value


def _setting_option(f, hint, model_defaults: dict) -> click.Option:
    """A click option from a TrainConfig field: help, choices and default from the field itself."""
    from .options import click_type

    meta = f.metadata
    flag = flag_name(f.name)
    if hint is list:
        return click.Option([flag, f.name], multiple=True, metavar="NAME", help=meta["help"])
    default = model_defaults.get(f.name, f.default)
    if hint is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=default, show_default=True, help=meta["help"])
    ctype = click.Choice(list(meta["choices"])) if meta.get("choices") else click_type(hint)
    return click.Option([flag, f.name], type=ctype, default=default, show_default=default is not None,
                        help=meta["help"])


def _naming_the_file(error: UsageError, ctx) -> UsageError:
    """``error`` with the --config file named when it refuses a value that file set (``--batch-size 32
    is more than ...``): the user typed no such flag, as _naming_the_preset says for a preset's."""
    config_file = ctx.meta.get("gentk.config_file")
    if config_file is None or "(--preset" in str(error):
        return error
    set_by_file = [key for key in ctx.params
                   if key != "preset" and ctx.get_parameter_source(key) is ParameterSource.DEFAULT_MAP]
    return naming_the_source(error, set_by_file, f"--config {config_file}")


def _preset_flags(values: dict) -> str:
    """A preset as the flags it stands for: {"n_critic": 5, "d_x": False} -> "--n-critic 5 --no-d-x"."""
    flags = []
    for key, value in values.items():
        flag = flag_name(key)
        if isinstance(value, bool):  # the --x/--no-x pair click_options declares
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(flags)


def _model_command(name: str) -> click.Command:
    import typing

    from .config import MODEL_DEFAULT_FIELDS, TrainConfig, cli_settings
    from .options import click_options

    spec = _registry().spec(name)
    model_defaults = {key: getattr(spec.defaults, key) for key in MODEL_DEFAULT_FIELDS}
    hints = typing.get_type_hints(TrainConfig)
    params = [_setting_option(f, hints[f.name], model_defaults) for f in cli_settings()]
    params += [click.Option([decl], **kwargs) for decl, kwargs in RUN_OPTIONS]
    if spec.presets:
        params.append(click.Option(["--preset"], multiple=True, metavar=f"[{'|'.join(sorted(spec.presets))}]",
                                   callback=lambda ctx, param, value: _check_preset(spec, value),
                                   help="A named set of option values: "
                                        + "; ".join(f"{name} = {_preset_flags(values)}"
                                                    for name, values in sorted(spec.presets.items()))
                                        + ". A --config file's keys override it and options given here override "
                                          "both; --resume refuses it (a resumed run keeps its settings). For the "
                                          "built-in models, what each preset costs and was measured to give: "
                                          "docs/models.md \"Presets\"."))
    core_names = {p.name for p in params}
    for opt in click_options(spec.options):
        if opt.name in core_names:
            raise GentkError(f"model {name!r} declares option --{opt.name} that clashes with a gentk option")
        params.append(opt)

    def callback(**kwargs):
        from .config import NULL
        from .engine import train

        ctx = click.get_current_context()
        # Only what the user typed or --config set: the rest comes from the model's defaults, or on
        # --resume the run's own.
        explicit = {k: (list(v) if isinstance(v, tuple) else NULL if v is None else v) for k, v in kwargs.items()
                    if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}  # None here: a file's null
        run_dir = explicit.pop("run_dir", None)
        resume = explicit.pop("resume", False)
        if resume and "preset" in explicit and ctx.get_parameter_source("preset") is ParameterSource.DEFAULT_MAP:
            raise UsageError(f"--config {ctx.meta['gentk.config_file']}: preset {explicit['preset']!r} sets what a run "
                             "trains, and a resumed run keeps its own settings: drop the preset from the file "
                             "(extend a run with --epochs or --max-steps)")
        progress = kwargs["progress"]
        explicit.pop("progress", None)
        nproc = explicit.pop("nproc", None)
        if nproc is not None:
            from .launch import check_nproc, launch

            if check_nproc(nproc):
                launch(nproc, _ARGV)
                return
        try:
            summary = train(name, run_dir, resume=resume, progress=progress, console=err_console, **explicit)
        except UsageError as exc:
            raise _naming_the_file(exc, ctx) from None
        if summary["rank"] == 0:
            steps = summary["steps"]
            # A resumed run's time is its training time over all sessions: say what this one added.
            session = (f"{steps} step{'' if steps == 1 else 's'} ({summary['steps_this_session']} this session) in "
                       f"{summary['wall_time_s']:.1f} s ({summary['wall_time_this_session_s']:.1f} s this session)"
                       if summary["resumed"] else
                       f"{steps} step{'' if steps == 1 else 's'} in {summary['wall_time_s']:.1f} s")
            err_console.print(f"[green]done[/green]: {session} -> {summary['run_dir']}")

    help_text = f"Train {name}: {spec.description}".strip()
    return click.Command(name, params=params, callback=callback, help=help_text, short_help=spec.description)


class TrainGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_registry().models())

    def get_command(self, ctx, name):
        if name not in _registry().models():
            return None
        return _model_command(name)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and not name.startswith("-"):
            _registry().spec(name)  # an unknown model (or one whose plugin failed) is one clear line
        return super().resolve_command(ctx, args)


class GentkGroup(click.Group):
    """gentk's own commands, then those plugins add through register_commands (looked up only
    when a name is not gentk's, so `gentk fid` never imports a plugin's command code)."""

    def _plugin_commands(self) -> dict:
        scratch = click.Group("gentk")
        _registry().add_commands(scratch, reserved=set(self.commands))
        return scratch.commands

    def list_commands(self, ctx):
        return sorted(self.commands) + sorted(self._plugin_commands())

    def get_command(self, ctx, name):
        return self.commands.get(name) or self._plugin_commands().get(name)


@click.group(cls=GentkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gentk")
def cli():
    """gentk: train and score generative image models (VAE, ControlVAE, GAN, WGAN, SSGAN, plugins)."""


@cli.group(cls=TrainGroup)
def train():
    """Train a model: gentk train MODEL [OPTIONS]; `gentk train MODEL --help` lists its options."""


# -- plugins and models ---------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def plugins(as_json):
    """List loaded plugins (name, version, distribution, hooks, load errors) in load order, and per
    model which plugin each model hook asks first."""
    reg = _registry()
    models = reg.models()  # registering models, datasets and commands may record plugin errors
    reg.datasets()
    reg.add_commands(click.Group("gentk"), reserved=set(cli.commands))
    rows = []
    for name, info in reg.plugins.items():
        rows.append({"name": name, "version": info.version, "distribution": info.distribution,
                     "hooks": reg.hooks_of(name), "error": info.error})
    precedence = {model: reg.precedence(model) for model in sorted(models)}
    if as_json:
        click.echo(json.dumps({"plugins": rows, "precedence": precedence}, indent=2))
        return
    table = Table("plugin", "version", "distribution", "hooks", "error", title="plugins, in load order")
    table.columns[-1].overflow = "fold"  # an error is read whole, never cut at the terminal's width
    for r in rows:
        table.add_row(r["name"], r["version"] or "", r["distribution"] or "", ", ".join(r["hooks"]),
                      f"[red]{r['error']}[/red]" if r["error"] else "")
    print_table(table)
    order = Table("model", "hook", "plugins asked, first to last",
                  title="who answers: the first answer wins (on_step and on_epoch_end run them all)")
    for model, hooks in precedence.items():
        for i, (hook, asked) in enumerate(hooks.items()):
            order.add_row(model if i == 0 else "", hook, " > ".join(asked))
    print_table(order)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets(as_json):
    """List the datasets `--data` accepts (NAME, or NAME:ARG), and the plugin of each."""
    rows = [{"name": n, "plugin": p, "arg": s.arg, "usage": s.usage, "description": s.description}
            for n, (s, p) in sorted(_registry().datasets().items())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("--data", "plugin", "description")
    for r in rows:
        table.add_row(r["usage"], r["plugin"], r["description"])
    print_table(table)


@cli.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--image-size", type=int, default=None,
              help="Describe MODEL built for this image size (its parameter counts); default: the model's.")
@click.option("--channels", type=click.Choice([1, 3]), default=None,
              help="Describe MODEL built for 1 or 3 channels; default: the model's (1 until data say otherwise).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Describe MODEL built with another value of one of its options, e.g. --set width=2 "
                   "(repeatable; the parameter counts follow).")
def models(model, as_json, image_size, channels, settings):
    """List registered models, or describe MODEL: its networks, options and image size."""
    from .describe import describe_model
    from .options import parse_setting

    reg = _registry()
    if model is None and (image_size is not None or channels is not None or settings):
        raise click.UsageError("--image-size, --channels and --set describe one model: "
                               "gentk models MODEL --set width=2")
    if model is None:
        rows = [{"name": n, "plugin": p, "description": s.description} for n, (s, p) in sorted(reg.models().items())]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        table = Table("model", "plugin", "description")
        for r in rows:
            table.add_row(r["name"], r["plugin"], r["description"])
        print_table(table)
        return
    overrides = {k: v for k, v in (("image_size", image_size), ("channels", channels)) if v is not None}
    options = reg.spec(model).options if settings else None
    for text in settings:
        key, value = parse_setting(options, text)
        if key in overrides:
            raise click.UsageError(f"{flag_name(key)} is given twice; give each option once")
        overrides[key] = value
    info = describe_model(reg, model, overrides)
    if overrides:
        info["built_with"] = overrides
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{model}: {info['description']}")
    if overrides:
        click.echo(f"built with {_preset_flags(overrides)}")
    table = Table("network", "parameters")
    for net, d in info["networks"].items():
        table.add_row(net, f"{d['parameters']:,}")
    table.add_row("[bold]total", f"[bold]{info['parameters']:,}")
    print_table(table)
    opts = Table("option", "default", "help")
    for key, d in info["options"].items():
        opts.add_row(flag_name(key), repr(d["default"]), d["help"])
    print_table(opts)
    defaults = ", ".join(f"{flag_name(k)} {v}" for k, v in info["training_defaults"].items())
    click.echo(f"training defaults: {defaults}")
    for name, values in sorted(info["presets"].items()):
        click.echo(f"preset {name}: {_preset_flags(values)}")


@cli.command()
@click.argument("folder", type=click.Path(), default="runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(folder, as_json):
    """List the runs in FOLDER (default: runs/), newest first: model, steps done of planned, state
    (running, finished, interrupted, crashed or failed), last checkpoint, wall time and FID."""
    from .runlist import list_runs

    rows = list_runs(folder)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        err_console.print(f"no runs in {escape(str(folder))} (a run is a folder holding a config.json)", highlight=False)
        return
    table = Table()
    for name in ("run", "model", "steps", "state", "checkpoint", "time", "FID"):  # folded, not cut short
        table.add_column(name, overflow="fold")
    colours = {"finished": "green", "running": "cyan", "interrupted": "yellow", "crashed": "red", "failed": "red"}
    for r in rows:
        steps = f"{r['steps'] if r['steps'] is not None else '-'} / {r['planned_steps'] or '?'}"
        state = f"[{colours.get(r['state'], 'white')}]{r['state']}[/]"
        wall = f"{r['wall_time_s']:.0f} s" if r["wall_time_s"] is not None else "-"
        fid = "  ".join(f"{k} {v:.2f}" for k, v in (r["fid"] or {}).items()) or "-"
        table.add_row(Path(r["run"]).name, r["model"] or "?", steps, state, r["checkpoint"] or "-", wall, fid)
    print_table(table)
    for r in rows:
        for note in r["notes"]:
            err_console.print(f"[yellow]{Path(r['run']).name}: {escape(note)}[/yellow]", highlight=False)


# -- sample -----------------------------------------------------------------------------

@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-n", "n", type=int, default=64, show_default=True, help="How many images.")
@click.option("-o", "--out", "out_dir", type=click.Path(), required=True, help="Folder for the PNGs (new or empty).")
@click.option("--checkpoint", default=None, help="Checkpoint name (step-NNNNNNNN); default: the latest intact one.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--label", type=int, default=None,
              help="Class to draw from (conditional models only); default: every class in turn.")
def sample(run_dir, n, out_dir, checkpoint, seed, device, label):
    """Write N PNG samples from RUN_DIR's latest (or --checkpoint) weights."""
    from .sampling import sample_to_folder

    paths = sample_to_folder(run_dir, n, out_dir, checkpoint=checkpoint, seed=seed, device=device, labels=label)
    err_console.print(f"wrote {len(paths)} images to {out_dir}")


def _non_default_options(model: str, options: dict) -> dict:
    from .options import option_defaults

    try:
        defaults = option_defaults(_registry().spec(model).options)
    except GentkError:  # the plugin is gone: show everything
        return options
    # --channels is filled in from the data when not given, so the run's value is (nearly always) the
    # data's, not a choice to point out; `gentk report --json` has it.
    return {k: v for k, v in options.items() if k != "channels" and defaults.get(k, object()) != v}


def _non_default_settings(row: dict) -> dict:
    """A report row's settings (report.SETTINGS) where they differ from the model's defaults."""
    from dataclasses import MISSING, fields

    from .config import MODEL_DEFAULT_FIELDS, TrainConfig
    from .report import SETTINGS

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    try:
        spec = _registry().spec(row["model"])
        defaults |= {k: getattr(spec.defaults, k) for k in MODEL_DEFAULT_FIELDS}
        defaults["fit"] = spec.model.fit  # what a run without --fit records
    except GentkError:  # the plugin is gone: its defaults are unknown, so its settings all show
        defaults = {k: v for k, v in defaults.items() if k not in MODEL_DEFAULT_FIELDS}
    # None: not recorded (a run older than the setting) or not set (--max-steps): nothing to point out.
    return {k: row[k] for k in SETTINGS if row.get(k) is not None and row[k] != defaults.get(k, object())}


# -- fid --------------------------------------------------------------------------------

@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--num-samples", type=int, default=10000, show_default=True, help="Images drawn from a run.")
@click.option("--num-reference", type=int, default=None, help="Test images in the reference (default: the whole split).")
@click.option("--checkpoint", default=None, help="Checkpoint of a run (default: the latest intact one).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling noise.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", type=int, default=None,
              help="Images per Inception batch (default: 8 on the CPU, where it is fastest; 200 on GPUs).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Inception arithmetic; bf16 is faster on GPUs but not pytorch-fid's number (see docs/fid.md).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="On the CPU in fp32 at the default batch size, run Inception compiled ahead of time for this "
                   "CPU (30-33 against about 24 images/s for the traced network on an idle 2-core CPU here, same "
                   "FID to 1e-6; built once in 10-60 s with the C++ compiler and cached under "
                   "GENTK_HOME/compiled). Beside a busy process it ran level with the traced network (gentk fid "
                   "sets OMP_WAIT_POLICY=PASSIVE unless you set it); --no-compile chooses the traced one. "
                   "Default: on, unless GENTK_FID_COMPILE=0.")
@click.option("--weights", type=click.Path(), default=None,
              help="Inception weights file (pytorch-fid .pth); default: found or fetched automatically.")
@click.option("--dims", type=click.Choice(["64", "192", "768", "2048"]), default="2048", show_default=True,
              help="Inception feature size (as pytorch-fid's --dims); 2048 (pool3) is the standard FID.")
@click.option("--features", type=click.Choice(["inception", "mnist-classifier"]), default="inception",
              show_default=True,
              help="Feature space: pytorch-fid's Inception (the standard FID), or gentk's MNIST classifier "
                   "(128-d; adds class coverage and confidence; written to fid-mnist-classifier.json).")
@click.option("--save-stats", type=click.Path(), default=None, help="Save one folder's statistics to this .npz.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def fid(paths, num_samples, num_reference, checkpoint, seed, device, batch_size, precision, compile_, weights,
        dims, features, save_stats, as_json, progress):
    """FID of a run (RUN_DIR) against its dataset's test split, or between two PATHs
    (folders of images or .npz statistics with mu and sigma, as pytorch-fid)."""
    from .fid import FidSettings

    if features != "inception":
        ctx = click.get_current_context()
        given = [f"--{n.rstrip('_')}" for n in ("dims", "weights", "precision", "compile_")
                 if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)]
        if given:
            raise click.UsageError(f"{', '.join(given)} apply to Inception features, not --features {features}")
    from .config import check_seed

    if batch_size is not None and batch_size < 1:
        raise click.UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    if num_reference is not None and num_reference < 2:
        raise click.UsageError(f"--num-reference must be at least 2 (got {num_reference})")
    check_seed(seed)
    ctx = click.get_current_context()
    is_run = len(paths) == 1 and (Path(paths[0]) / "config.json").is_file()
    if not is_run:
        run_only = [f"--{n.replace('_', '-')}" for n in ("num_samples", "num_reference", "checkpoint", "seed")
                    if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)]
        if run_only:
            raise click.UsageError(f"{', '.join(run_only)} apply to a run (RUN_DIR), not to folders or .npz files")
    settings = FidSettings(device=device, batch_size=batch_size, precision=precision, compile=compile_, weights=weights,
                           dims=int(dims), features=features, progress=progress, console=err_console)
    try:
        result = _fid_result(paths, settings, num_samples, num_reference, checkpoint, seed, save_stats)
    finally:
        if settings.dist is not None:
            settings.dist.close()
    if "scores" in result:  # a run was scored
        w = result["weights"]
        text = ", ".join(f"{k} {v:.2f}" for k, v in result["scores"].items())
        name = "FID" if features == "inception" else f"FD ({features})"
        classes = result.get("sample_classes")
        extra = (f"; samples cover {classes['coverage']}/10 classes, balance {classes['balance']:.2f}, "
                 f"confidence {classes['confidence']:.3f}") if classes else ""
        line = (f"{name} {text} ({result['counts']['samples']} samples vs {result['reference']['images']} test images; "
                f"{w['source']} weights sha256 {w['sha256'][:12]}{extra}) -> {result['path']}")
    else:
        line = f"saved statistics to {save_stats}" if save_stats else f"FID: {result['fid']:.6f}"
    from .distributed import env_int

    if env_int("RANK", 0) != 0:  # under torchrun, rank 0 reports for the job
        return
    for warning in result.get("warnings", []):
        err_console.print(f"[yellow]warning: {escape(warning)}[/yellow]")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(line)


def _fid_result(paths, settings, num_samples, num_reference, checkpoint, seed, save_stats) -> dict:
    from pathlib import Path

    from .fid import fid_of_paths, fid_of_run

    if len(paths) == 1 and (Path(paths[0]) / "config.json").is_file():
        if save_stats:
            raise click.UsageError("--save-stats is for folders of images, not runs")
        return fid_of_run(paths[0], settings, num_samples, num_reference, checkpoint, seed)
    return fid_of_paths(list(paths), settings, save_stats)


# -- report -----------------------------------------------------------------------------

@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--plots/--no-plots", default=True, show_default=True, help="(Re)write each run's plots/ folder.")
def report(run_dirs, as_json, plots):
    """Compare runs side by side (model, options, steps, time, final losses, FID) and redraw their plots."""
    from .report import summarize, write_plots

    # A folder that is not a run is named, and the others are still compared (as `ls a b` lists what
    # it can): every bad folder is reported at once, not one per attempt; the exit status says so.
    rows, good, problems = [], [], []
    for r in run_dirs:
        try:
            rows.append(summarize(r))
            good.append(r)
        except GentkError as exc:
            problems.append(exc)
        except OSError as exc:  # what no check anticipated (an unreadable checkpoints/): still this folder's
            problems.append(GentkError(f"{exc.filename or r}: {exc.strerror or exc}"))
    for exc in problems:
        err_console.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    status = problems[0].exit_code if problems else 0
    if not rows:
        return status
    for row in rows:
        for note in row["notes"]:
            err_console.print(f"[yellow]warning: {escape(row['run'])}: {escape(note)}[/yellow]", highlight=False)
    if plots:
        for r in good:
            try:
                write_plots(r)
            except GentkError as exc:  # a read-only run still gets its row in the table
                err_console.print(f"[yellow]warning: plots of {escape(str(r))} not written: {escape(str(exc))}[/yellow]", highlight=False)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return status
    table = Table()
    # One value a line, folded rather than cut with an ellipsis where a column is narrower: a run's
    # path or a data folder is what the user needs whole.
    for name in ("run", "model", "non-default settings", "steps", "time", "final losses", "FID"):
        table.add_column(name, overflow="fold")
    for r in rows:
        changed = {**_non_default_settings(r), **_non_default_options(r["model"], r["options"])}
        opts = "\n".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())
        losses = "\n".join(f"{k} {v:.4g}" for k, v in r["final"].items())
        fid = "\n".join(f"{k} {v:.2f}" for k, v in (r["fid"] or {}).items()) or "-"
        wall = f"{r['wall_time_s']:.0f} s" if r["wall_time_s"] is not None else "-"
        steps = (str(r["steps"]) + (f" / {r['planned_steps']}" if r["planned_steps"] else "")
                 + (f" {r['state']}" if r["state"] not in (None, "finished") else ""))
        table.add_row(r["run"], r["model"], opts, steps, wall, losses, fid)
    print_table(table)
    return status


# -- entry point --------------------------------------------------------------------------


_ARGV: list[str] = []


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """A Python warning as the CLI's other warnings look: one line, no source path or code."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


def main(argv=None):
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)  # --nproc starts workers with the same arguments
    debug = os.environ.get("GENTK_DEBUG", "") not in ("", "0")
    shown = warnings.showwarning
    if not debug:
        warnings.showwarning = _warning_line
    try:
        return _run(argv, debug)
    finally:
        warnings.showwarning = shown


def _run(argv, debug: bool):
    try:
        rv = cli.main(args=argv, prog_name="gentk", standalone_mode=False)
    except GentkError as exc:
        if debug:
            raise
        # A Ctrl-C that checkpointed is a normal stop, not an error: it says so in other words.
        label = "[yellow]Interrupted:[/yellow]" if exc.exit_code in (130, 143) else "[red]Error:[/red]"
        err_console.print(f"{label} {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("[red]Aborted.[/red]")
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        err_console.print(f"[red]Error:[/red] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]Interrupted.[/red]")
        sys.exit(130)
    except OSError as exc:  # a file-system error no check anticipated (a name too long, ...): still one line
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"[red]Error:[/red] {escape(where + (exc.strerror or str(exc)))}", highlight=False,
                          soft_wrap=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
