"""gentk report: the comparison table, JSON rows, regenerated plots, epoch means."""

import json

from PIL import Image

from gentk.cli import _non_default_options, _non_default_settings
from gentk.engine import train
from gentk.report import epoch_means


def test_epoch_means():
    rows = [{"step": 1, "epoch": 0, "loss": 1.0}, {"step": 2, "epoch": 0, "loss": 3.0},
            {"step": 3, "epoch": 1, "loss": 5.0}]
    assert epoch_means(rows, "loss") == ([2, 3], [2.0, 5.0])


def test_report_compares_runs_and_redraws_plots(gentk_cli, tmp_path, tiny_data):
    common = dict(data=tiny_data, device="cpu", progress=False, batch_size=8)
    train("controlvae", tmp_path / "a", max_steps=3, target_kl=5.0, **common)
    train("gan", tmp_path / "b", max_steps=2, **common)
    (tmp_path / "a" / "plots" / "kl_beta.png").unlink()
    result = gentk_cli("report", tmp_path / "a", tmp_path / "b", "--json")
    assert result.code == 0, result
    rows = json.loads(result.out)
    assert [r["model"] for r in rows] == ["controlvae", "gan"]
    assert rows[0]["steps"] == 3 and rows[1]["steps"] == 2
    assert rows[0]["options"]["target_kl"] == 5.0
    assert set(rows[1]["final"]) == {"discriminator_loss", "generator_loss"}
    assert rows[0]["wall_time_s"] > 0
    assert Image.open(tmp_path / "a" / "plots" / "kl_beta.png").size[0] > 100
    table = gentk_cli("report", tmp_path / "a", tmp_path / "b", "--no-plots")
    assert table.code == 0 and "controlvae" in table.out and "gan" in table.out
    # The table's options column: what was chosen (target_kl), not what came from the data (channels);
    # an option whose default is None shows once it is set.
    assert rows[0]["options"]["channels"] == 1
    assert _non_default_options("controlvae", rows[0]["options"]) == {"target_kl": 5.0}
    assert _non_default_options("controlvae", dict(rows[0]["options"], error_clip=2.0)) == {
        "target_kl": 5.0, "error_clip": 2.0}
    assert _non_default_settings(dict(rows[1], data_fraction=0.5))["data_fraction"] == 0.5
    assert "data_fraction" not in _non_default_settings(rows[1])
    # The data shows where it is not the default mnist, and no cell is cut short (a folder path is long).
    assert _non_default_settings(rows[1])["data"] == rows[1]["data"] == tiny_data
    assert "data" not in _non_default_settings(dict(rows[1], data="mnist"))
    assert "\u2026" not in table.out and "data=folder:" in table.out
    # Piped (as here), the table is whole: no value is split across lines (rich folds at 80 columns).
    assert f"data={tiny_data}" in table.out and str(tmp_path / "a") in table.out
    # Every setting that makes two runs differ shows where it is not the default, the seed and fit too.
    assert _non_default_settings(dict(rows[1], seed=7, fit="pad", max_steps=2, precision="bf16")) == {
        "data": tiny_data, "max_steps": 2, "batch_size": 8, "seed": 7, "fit": "pad", "precision": "bf16"}
    assert (rows[1]["state"], rows[1]["planned_steps"], rows[1]["seed"]) == ("finished", 2, 0)
    assert "2 / 2" in table.out


def test_a_run_without_a_status_file_is_not_called_crashed(gentk_cli, tmp_path, tiny_data):
    """Runs written before gentk kept status.json: their state is unknown, not guessed."""
    train("gan", tmp_path / "old", max_steps=2, data=tiny_data, device="cpu", progress=False, batch_size=8)
    (tmp_path / "old" / "status.json").unlink()
    row, = json.loads(gentk_cli("report", tmp_path / "old", "--no-plots", "--json").out)
    assert row["state"] is None and row["steps"] == 2
    assert "crashed" not in gentk_cli("report", tmp_path / "old", "--no-plots").out


def _crash(run, at: int):
    """As if killed with kill -9 after step ``at``'s checkpoint: later checkpoints gone, status.json still
    says running, and no process holds the lock."""
    for path in (run / "checkpoints").glob("step-*"):
        if int(path.name[5:13]) > at:
            path.unlink()
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(dict(status, state="running", step=at)))


def test_a_crashed_runs_losses_are_its_last_checkpoints(gentk_cli, tmp_path, tiny_data):
    """A session killed between checkpoints: the table shows the step a resume starts from, and its losses."""
    run = tmp_path / "killed"
    train("gan", run, max_steps=5, checkpoint_every=2, log_every=1, data=tiny_data, device="cpu",
          progress=False, batch_size=8)
    logged = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r.get("split", "train") == "train"}
    finished, = json.loads(gentk_cli("report", run, "--no-plots", "--json").out)
    assert finished["final"]["generator_loss"] == logged[5]["generator_loss"]  # a finished run: its last step
    _crash(run, 4)
    result = gentk_cli("report", run, "--no-plots", "--json")
    row, = json.loads(result.out)
    assert row["state"] == "crashed" and row["steps"] == 4
    assert row["final"]["generator_loss"] == logged[4]["generator_loss"]
    err = " ".join(result.err.split())
    assert "metrics.jsonl has 1 step past step 4, the last checkpoint (the session ended before saving it)" in err
    assert "drops its row" in err and f"gentk train gan --resume --run-dir {run}" in err
    _crash(run, 2)
    assert "has 3 steps past step 2" in " ".join(gentk_cli("report", run, "--no-plots").err.split())
    _crash(run, 0)
    result = gentk_cli("report", run, "--no-plots", "--json")
    row, = json.loads(result.out)
    assert row["steps"] == 0 and row["final"] == {} and "no losses shown" in " ".join(result.err.split())


def test_a_live_run_shows_its_live_losses(gentk_cli, tmp_path, tiny_data):
    """status.json says running and a process holds the lock: the steps past the checkpoint are not lost."""
    import fcntl
    import os
    import subprocess

    run = tmp_path / "live"
    train("gan", run, max_steps=3, checkpoint_every=2, log_every=1, data=tiny_data, device="cpu",
          progress=False, batch_size=8)
    _crash(run, 2)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the training process, as far as report can tell
        result = gentk_cli("report", run, "--no-plots", "--json")
    finally:
        os.close(fd)
    row, = json.loads(result.out)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["state"] == "running" and row["final"]["generator_loss"] == last["generator_loss"]
    assert "past step" not in result.err
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(dict(status, step=3)))
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        row, = json.loads(gentk_cli("report", run, "--no-plots", "--json").out)
    finally:
        os.close(fd)
    assert row["steps"] == 3  # where status.json says the live run is, as `gentk runs` shows it
    # A resume holds the lock before it rewrites the crashed session's status.json: a step recorded
    # by a process that is gone is not trusted.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / "status.json").write_text(json.dumps(dict(status, step=3, pid=gone.pid)))
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        row, = json.loads(gentk_cli("report", run, "--no-plots", "--json").out)
        runs_row, = json.loads(gentk_cli("runs", run, "--json").out)
    finally:
        os.close(fd)
    assert row["steps"] == 2 and runs_row["steps"] == 2


def test_a_fid_of_an_older_step_is_named(gentk_cli, tmp_path, tiny_data):
    run = tmp_path / "extended"
    train("gan", run, max_steps=2, data=tiny_data, device="cpu", progress=False, batch_size=8)
    (run / "fid.json").write_text(json.dumps({"scores": {"samples": 406.96}, "step": 1, "counts": {"samples": 64}}))
    result = gentk_cli("report", run, "--no-plots", "--json")
    row, = json.loads(result.out)
    assert row["fid"] == {"samples": 406.96} and row["fid_step"] == 1
    assert "its FID is of step 1, not of step 2 shown" in " ".join(result.err.split())
    (run / "fid.json").write_text(json.dumps({"scores": {"samples": 406.96}, "step": 2}))
    assert "FID is of step" not in gentk_cli("report", run, "--no-plots").err
    (run / "fid.json").write_text(json.dumps({"scores": {"samples": 406.96}, "step": 1, "checkpoint": "step-00000001"}))
    assert "its FID is of step 1 (step-00000001), not of step 2 shown" in " ".join(
        gentk_cli("report", run, "--no-plots").err.split())
    # A step gentk did not write is no step: the scores still show, with no claim about them.
    (run / "fid.json").write_text(json.dumps({"scores": {"samples": 406.96}, "step": "two", "counts": "x"}))
    result = gentk_cli("report", run, "--no-plots", "--json")
    row, = json.loads(result.out)
    assert result.code == 0 and row["fid"] == {"samples": 406.96} and row["fid_step"] is None and not result.err


def test_a_damaged_newest_sidecar_keeps_the_crashed_runs_losses(gentk_cli, tmp_path, tiny_data):
    """No intact checkpoint: a resume is refused, so the logged losses are all there is to show."""
    run = tmp_path / "damaged"
    train("gan", run, max_steps=2, checkpoint_every=2, log_every=1, data=tiny_data, device="cpu",
          progress=False, batch_size=8)
    _crash(run, 2)
    (run / "checkpoints" / "step-00000002.json").write_text("{")
    row, = json.loads(gentk_cli("report", run, "--no-plots", "--json").out)
    assert row["steps"] == 0 and row["final"]


def test_report_of_a_missing_folder_says_it_does_not_exist(gentk_cli, tmp_path):
    assert "does not exist" in gentk_cli("report", tmp_path / "nothing").err


def test_report_names_every_bad_folder_and_still_compares_the_runs(gentk_cli, tmp_path, tiny_data):
    train("gan", tmp_path / "run", max_steps=2, data=tiny_data, device="cpu", progress=False, batch_size=8)
    (tmp_path / "empty").mkdir()
    result = gentk_cli("report", tmp_path / "nothing", tmp_path / "run", tmp_path / "empty", "--no-plots")
    assert result.code == 1
    assert "nothing" in result.err and "does not exist" in result.err and "not a gentk run" in result.err
    assert "gan" in result.out and "2 / 2" in result.out
    rows = json.loads(gentk_cli("report", tmp_path / "run", tmp_path / "nothing", "--no-plots", "--json").out)
    assert [r["model"] for r in rows] == ["gan"]


def test_report_of_a_folder_of_runs_points_to_gentk_runs(gentk_cli, tmp_path, tiny_data):
    train("gan", tmp_path / "runs" / "a", max_steps=1, data=tiny_data, device="cpu", progress=False, batch_size=8)
    (tmp_path / "plain.txt").write_text("hello")
    result = gentk_cli("report", tmp_path / "runs", tmp_path / "plain.txt")
    err = " ".join(result.err.split())
    assert result.code == 1 and f"holds runs: `gentk runs {tmp_path / 'runs'}` lists them" in err
    assert "plain.txt is a file, not a gentk run" in err


def test_gentk_runs_without_a_runs_folder_says_where_it_looked(gentk_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = " ".join(gentk_cli("runs").err.split())
    assert f"runs does not exist here ({tmp_path})" in err and "`gentk runs runs`" not in err


def test_report_of_a_non_run(gentk_cli, tmp_path):
    result = gentk_cli("report", tmp_path)
    assert result.code == 1 and "not a gentk run" in result.err
