"""Plots of a run (losses, KL and beta, samples over training) and a side-by-side table of runs."""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import defaultdict
from pathlib import Path

from .checkpoint import latest_intact, list_checkpoints, read_sidecar
from .errors import RunDirError
from .fsutil import atomic_write_bytes
from .runs import RunDir
from .safeio import MiB, read_bytes

STRIP_GRIDS = 6
_SAMPLE = re.compile(r"^samples-(\d+)\.png$")


#: The settings of a run a report row carries (beside its options): what it trained, and on what.
SETTINGS = ("data", "epochs", "max_steps", "batch_size", "lr", "lr_schedule", "seed", "data_fraction", "fit",
            "precision", "world_size")

#: Row keys that are bookkeeping, not a model's metrics.
BOOKKEEPING = ("step", "epoch", "split", "images_per_sec")


def metric_keys(rows: list[dict], phases: list[str]) -> list[str]:
    """Every numeric metric the rows log, grouped by phase (keys are "<phase>_<name>" when a
    model has several phases), in the order they first appear."""
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen.setdefault(k)
    keys = list(seen)
    if not phases:
        return keys
    rank = {p: i for i, p in enumerate(phases)}
    return sorted(keys, key=lambda k: rank.get(next((p for p in phases if k.startswith(p + "_")), None), len(phases)))


def is_number(value) -> bool:
    """A value a plot or a table can show (rows may hold strings a plugin logged)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def headline_keys(config: dict, row: dict) -> list[str]:
    """What a model declares worth showing (progress bar, report table); each phase's loss otherwise."""
    declared = (config.get("display") or {}).get("progress")
    keys = [k for k in declared if k in row] if declared else [k for k in row if k == "loss" or k.endswith("_loss")]
    return [k for k in keys if is_number(row[k])]


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [r for r in rows if r.get("split", "train") == "train"]
    held_out = [r for r in rows if r.get("split") == "test"]
    return train, held_out


def epoch_means(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Mean of ``key`` per epoch, placed at the last step of the epoch."""
    sums, counts, last = defaultdict(float), defaultdict(int), {}
    for r in rows:
        value = r.get(key)
        if is_number(value) and math.isfinite(value):
            sums[r["epoch"]] += value
            counts[r["epoch"]] += 1
            last[r["epoch"]] = r["step"]
    epochs = sorted(sums)
    return [last[e] for e in epochs], [sums[e] / counts[e] for e in epochs]


def _figure_bytes(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_losses(rows: list[dict], title: str, phases: list[str]):
    """One panel per logged metric, grouped by phase: per step, epoch means, held-out values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, held_out = split_rows(rows)
    keys = metric_keys(train, phases)
    if not keys:
        return None
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in train if is_number(r.get(key))]
        if points:
            ax.plot(*zip(*points), lw=0.6, alpha=0.45, label="per step")
        ex, ey = epoch_means(train, key)
        if len(ex) > 0:
            ax.plot(ex, ey, "o-", ms=3, lw=1.5, label="epoch mean")
        held = [(r["step"], r[key]) for r in held_out if is_number(r.get(key))]
        if held:
            ax.plot(*zip(*held), "s--", ms=3, lw=1.2, label="held-out")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    return fig


def plot_panels(rows: list[dict], title: str, panels: list[list[str]]):
    """A figure a model declares: stacked panels, each drawing the listed metrics per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, _ = split_rows(rows)
    if not any(k in r for r in train for panel in panels for k in panel):
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.5 * len(panels)), sharex=True, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for key in panel:
            points = [(r["step"], r[key]) for r in train if is_number(r.get(key))]
            if points:
                ax.plot(*zip(*points), lw=0.9, label=key)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[-1].set_xlabel("step")
    fig.suptitle(title)
    return fig


def plot_sample_strip(samples_dir: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    grids = sorted((int(m.group(1)), p) for p in samples_dir.glob("samples-*.png") if (m := _SAMPLE.match(p.name)))
    if not grids:
        return None
    if len(grids) > STRIP_GRIDS:
        picks = [round(i * (len(grids) - 1) / (STRIP_GRIDS - 1)) for i in range(STRIP_GRIDS)]
        grids = [grids[i] for i in picks]
    images = [(step, image) for step, path in grids if (image := _read_grid(path)) is not None]
    if not images:
        return None
    fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 2.9), squeeze=False)
    for ax, (step, image) in zip(axes.flat, images):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(f"step {step}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def _read_grid(path: Path):
    """A sample grid as an array (H x W gray, or H x W x 3 colour), or None if it is not a
    readable image (a FIFO, a link, a damaged or absurdly large PNG): the strip shows the others."""
    import io

    import numpy as np
    from PIL import Image

    from .data.folder import MAX_PIXELS

    try:
        data = read_bytes(path, 64 * MiB, RunDirError, "sample grid")
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                return None
            gray = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            return np.asarray(img.convert("L" if gray else "RGB"))
    except (RunDirError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def write_plots(run_dir: str | Path) -> list[Path]:
    """(Re)write plots/losses.png (every metric, by phase), one PNG per figure the model declares
    (ControlVAE's kl_beta.png, say) and plots/samples.png."""
    import matplotlib.pyplot as plt

    run = RunDir(run_dir)
    config = run.read_config()
    display = config.get("display") or {}
    rows = run.read_metrics()
    title = f"{config['model']} - {run.path.name}"
    figures = [("losses.png", lambda: plot_losses(rows, title, display.get("phases") or []))]
    figures += [(f"{name}.png", lambda panels=panels: plot_panels(rows, title, panels))
                for name, panels in (display.get("figures") or {}).items()]
    figures.append(("samples.png", lambda: plot_sample_strip(run.samples, title)))
    written = []
    for name, draw in figures:
        fig = draw()
        if fig is None:
            continue
        path = run.plots / name
        atomic_write_bytes(path, _figure_bytes(fig))
        plt.close(fig)
        written.append(path)
    return written


def run_state(run: RunDir, config: dict) -> tuple[str | None, int | None, list[str], int]:
    """(state, planned steps, notes, the step a live run's status.json records, else 0) from the run's
    status.json; state None where the run has none (written before gentk kept one): unknown, not
    "crashed" as `gentk runs` would guess from the lock."""
    from .runlist import live_step, lock_held, read_status, status_state

    try:
        status = read_status(run)
    except RunDirError as exc:
        return None, config.get("planned_steps"), [f"{exc}; state not shown"], 0
    if status is None:
        return None, config.get("planned_steps"), [], 0
    state = status_state(status, lock_held(run))
    notes = [f"{state}: {status['error']}"] if status.get("error") else []
    return state, status.get("planned_steps", config.get("planned_steps")), notes, live_step(status)


def as_of_checkpoint(train: list[dict], held_out: list[dict], step: int, intact: bool, run: Path,
                     model: str | None) -> tuple[list[dict], list[dict], str | None]:
    """A crashed run's rows up to its last checkpoint, and a note on the rows past it, or None.

    A session killed between checkpoints logged steps no checkpoint holds: a resume trains them
    again and drops their rows, so the losses shown are those of the step it starts from, the one
    the steps column shows. A live run (its lock held) or a failed one keeps all its rows."""
    kept = [r for r in train if r.get("step", 0) <= step]
    past = len(train) - len(kept)
    if not past:
        return train, held_out, None
    resume = f"gentk train {model} --resume --run-dir {shlex.quote(str(run))}"
    them, rows = ("it", "its row") if past == 1 else ("them", "their rows")
    logged = f"metrics.jsonl has {past} step{'' if past == 1 else 's'}"
    if intact:
        note = (f"{logged} past step {step}, the last checkpoint (the session ended before saving {them}): the "
                f"losses shown are those logged by step {step}; `{resume}` trains {them} again and drops {rows}")
    else:
        note = (f"{logged} and the run has no checkpoint (the session ended before its first): no losses shown; "
                f"`{resume}` starts it again from step 0")
    return kept, [r for r in held_out if r.get("step", 0) <= step], note


def summarize(run_dir: str | Path) -> dict:
    """One row of the comparison table: model, non-default options, steps, time, final losses, FID."""
    run = RunDir(run_dir)
    config = run.read_config()
    rows, damaged = run.read_metrics_checked()
    train, held_out = split_rows(rows)
    steps, elapsed, intact = 0, None, False
    names = list_checkpoints(run.checkpoints)
    if names:
        try:
            meta = read_sidecar(run.checkpoints / f"{names[0]}.json")
            steps, elapsed, intact = meta["step"], meta.get("state", {}).get("elapsed"), True
        except Exception:  # noqa: BLE001 - a damaged sidecar: fall back to a full check
            ckpt, _ = latest_intact(run.checkpoints)
            if ckpt is not None:
                steps, elapsed, intact = ckpt.meta["step"], ckpt.meta.get("state", {}).get("elapsed"), True
    state, planned, notes, status_step = run_state(run, config)
    if state == "running" and status_step > steps:
        steps = status_step  # a live run: where it is now (as `gentk runs` says), with its live losses
    if state == "crashed" and (intact or not names):
        train, held_out, note = as_of_checkpoint(train, held_out, steps, intact, run.path, config.get("model"))
        notes += [note] if note else []
    last = train[-1] if train else {}
    fid, scored = None, None
    try:
        result = run.read_fid_result() or {}
        fid = result.get("scores")
        step = result.get("step")  # as written: anything but a step number is no step
        scored = step if fid and isinstance(step, int) and not isinstance(step, bool) else None
        if scored is not None and scored != steps:
            picked = result.get("checkpoint")
            what = f" ({picked})" if isinstance(picked, str) and picked.startswith("step-") else ""
            advice = ("the run is still training" if state == "running" else
                      f"`gentk fid {shlex.quote(str(run.path))}` scores its newest checkpoint")
            notes.append(f"its FID is of step {scored}{what}, not of step {steps} shown: {advice}")
    except RunDirError as exc:  # the table still shows the run; the damage is named
        notes.append(f"{exc}; FID not shown")
    return {
        "run": str(run.path),
        "model": config.get("model"),
        "options": config.get("options", {}),
        **{key: config.get(key) for key in SETTINGS},
        "lr_schedule": config.get("lr_schedule", "constant"),  # runs from before the option: constant
        "steps": steps,
        "planned_steps": planned,
        "state": state,
        "wall_time_s": elapsed,
        "final": {k: last[k] for k in headline_keys(config, last)},
        "held_out": {k: v for k, v in (held_out[-1] if held_out else {}).items() if k not in BOOKKEEPING},
        "fid": fid,
        "fid_step": scored,
        "notes": notes + [f"{run.metrics_path} line {n} is damaged ({why}); skipped" for n, why, _ in damaged],
    }

