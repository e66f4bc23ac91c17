"""`gentk runs [DIR]`: every run in a folder, with how far it got and how it ended.

A run's state comes from RUN/status.json, which training rewrites when it
starts ("running"), finishes ("finished"), is interrupted by Ctrl-C or
SIGTERM ("interrupted", a checkpoint written) or stops on an error
("failed"), and from its lock: a run whose status says "running" while no
process holds its lock was killed ("crashed": resume it from its last
checkpoint).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path

from .checkpoint import list_checkpoints, read_sidecar
from .errors import GentkError, RunDirError
from .fsutil import atomic_write_text
from .runs import CONFIG, LOCK, RunDir
from .safeio import MiB, read_text
from .schema import Int, Obj, Optional, Str, parse_json, validate

STATUS = "status.json"
STATES = ("running", "finished", "interrupted", "failed")
STATUS_SCHEMA = Obj(required={"state": Str(r"running|finished|interrupted|failed")},
                    optional={"step": Int(min=0), "planned_steps": Optional(Int(min=0)), "pid": Int(),
                              "error": Optional(Str(max_len=20_000)), "updated": Str()})


def write_status(run: RunDir, state: str, step: int, planned: int | None, error: str | None = None) -> None:
    status = {"state": state, "step": step, "planned_steps": planned, "pid": os.getpid(),
              "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "error": error}
    atomic_write_text(run.inside(STATUS), json.dumps(status, indent=1) + "\n")


def read_status(run: RunDir) -> dict | None:
    path = run.inside(STATUS)
    if not path.exists():
        return None
    status = parse_json(read_text(path, 1 * MiB, RunDirError, "run status"), path, RunDirError, "run status")
    validate(status, STATUS_SCHEMA, path, RunDirError)
    return status


def lock_held(run: RunDir) -> bool:
    """Whether a process holds the run's lock (flock: released when that process dies, even by kill -9)."""
    try:
        fd = os.open(run.inside(LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)
    return False


def live_step(status: dict) -> int:
    """The step a running run's status.json records, or 0 unless the process that wrote it is alive:
    a resume holds the lock minutes before it rewrites the crashed session's status.json."""
    pid, step = status.get("pid"), status.get("step")
    if not isinstance(pid, int) or not isinstance(step, int) or pid <= 0:
        return 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return 0
    except OSError:  # alive, another user's
        pass
    return step


def status_state(status: dict, held: bool) -> str:
    """The state a status.json records, except "running" without a process holding the lock: crashed."""
    return "crashed" if status["state"] == "running" and not held else status["state"]


def describe_run(path: Path) -> dict:
    """One row of `gentk runs`; a damaged file makes its field unknown and adds a note, never an error."""
    run = RunDir(path)
    row = {"run": str(path), "model": None, "state": "unknown", "steps": None, "planned_steps": None,
           "checkpoint": None, "wall_time_s": None, "fid": None, "notes": []}
    try:
        config = run.read_config()
        row["model"] = config["model"]
        row["planned_steps"] = config.get("planned_steps")
    except GentkError as exc:
        row["notes"].append(str(exc))
    try:
        status = read_status(run)
    except GentkError as exc:
        status = None
        row["notes"].append(str(exc))
    try:
        names = list_checkpoints(run.checkpoints)
        if names:
            meta = read_sidecar(run.checkpoints / f"{names[0]}.json")
            row["checkpoint"], row["steps"] = names[0], meta["step"]
            row["wall_time_s"] = (meta.get("state") or {}).get("elapsed")
    except GentkError as exc:
        row["notes"].append(str(exc))
    held = lock_held(run)
    if status is None:
        row["state"] = "running" if held else ("unknown" if row["checkpoint"] is None else "crashed")
    else:
        row["state"] = status_state(status, held)
    if status is not None:
        row["planned_steps"] = status.get("planned_steps", row["planned_steps"])
        if row["state"] == "running":
            row["steps"] = max(row["steps"] or 0, live_step(status))
        if status.get("error"):
            row["notes"].append(status["error"])
    try:
        row["fid"] = run.read_fid_scores()
    except GentkError as exc:
        row["notes"].append(str(exc))
    return row


def list_runs(folder: str | Path) -> list[dict]:
    """The runs directly in ``folder`` (sub-folders holding a config.json), newest first."""
    folder = Path(folder)
    if not folder.exists():
        if folder.is_absolute():
            raise RunDirError(f"{folder} does not exist")
        raise RunDirError(f"{folder} does not exist here ({Path.cwd()}): `gentk train` puts runs in runs/ under the "
                          "folder it was started in; give `gentk runs` the folder that holds yours")
    if not folder.is_dir():
        raise RunDirError(f"{folder} is not a folder of runs")
    if (folder / CONFIG).exists():  # a run itself: its own row
        return [describe_run(folder)]
    runs = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and (p / CONFIG).exists()]
    runs.sort(key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)
    return [describe_run(p) for p in runs]
