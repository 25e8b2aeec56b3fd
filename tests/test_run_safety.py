"""Nothing lost or mixed up (issue 24): one run per directory, a user's files untouched,
deleted checkpoints refused, Ctrl-C stopping at a safe point and resuming exactly, atomic
rotation, Hydra's errors and a sweep's bad job as one line before anything runs."""

import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from crl import checkpoint as checkpoint_module
from crl import rundir
from crl.checkpoint import Checkpointer
from crl.config import from_dict
from crl.run import Interrupted, run_training
from crl.train import Trainer
from helpers import TINY, crl_env, crl_train, crl_train_cmd, deterministic_columns, read_csv, tiny_config


# 5 epochs x 5 update phases: a stop can land inside an epoch.
PHASED = tiny_config(train={"total_env_steps": 1000, "num_epochs": 5})


def _files(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _one_error_line(result, start):
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(start), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def phased_reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("phased") / "run"
    run_training(from_dict(PHASED), run_dir)
    return deterministic_columns(read_csv(run_dir / "metrics.csv"))


# -- one run per directory -------------------------------------------------------------


def test_the_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path, caplog):
    lock = rundir.RunLock.acquire(tmp_path)
    with pytest.raises(rundir.RunDirError, match=rf"in use by another run \(pid {os.getpid()} on "):
        rundir.RunLock.acquire(tmp_path)
    lock.release()
    assert rundir.holder(tmp_path) is None
    rundir.RunLock.acquire(tmp_path).release()  # a clean release leaves nothing to take over
    assert "taking over" not in caplog.text
    # a holder that died: its line stays in the file, the kernel dropped its flock
    (tmp_path / rundir.LOCK_FILE).write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00\n")
    with caplog.at_level("WARNING"):
        rundir.RunLock.acquire(tmp_path).release()
    assert "taking over" in caplog.text and "pid 999999" in caplog.text


def test_a_second_crl_train_in_a_running_run_dir_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        crl_train_cmd(*TINY, "train.total_env_steps=4000", "train.num_epochs=10", f"hydra.run.dir={run_dir}"),
        cwd=tmp_path, env=crl_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 300
        while rundir.holder(run_dir) is None:
            assert first.poll() is None and time.time() < deadline, first.stderr.read()[-2000:]
            time.sleep(0.05)
        hydra_files = _files(run_dir / ".hydra")
        second = crl_train(*TINY, "train.total_env_steps=4000", "train.num_epochs=10", f"hydra.run.dir={run_dir}",
                           cwd=tmp_path)
        assert second.returncode == 2
        line = _one_error_line(second, "crl-train: config error: hydra.run.dir:")
        assert f"in use by another run (pid {first.pid} on" in line
        assert _files(run_dir / ".hydra") == hydra_files  # Hydra never ran for the second one
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    assert [int(r["epoch"]) for r in read_csv(run_dir / "metrics.csv")] == list(range(1, 11))


# -- a user's directory ------------------------------------------------------------------


def test_a_directory_that_is_not_a_run_is_left_untouched(tmp_path):
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "config.yaml").write_text("my: own\n")
    (theirs / "metrics.csv").write_text("a,b\n1,2\n")
    before = _files(theirs)
    result = crl_train(*TINY, f"hydra.run.dir={theirs}", cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result, "crl-train: config error: hydra.run.dir:")
    assert "not a crl run (it holds config.yaml, metrics.csv)" in line
    assert _files(theirs) == before and sorted(p.name for p in theirs.iterdir()) == ["config.yaml", "metrics.csv"]
    # the library refuses it too; an empty directory is fine
    with pytest.raises(rundir.RunDirError, match="not a crl run"):
        run_training(from_dict(tiny_config()), theirs)
    empty = tmp_path / "empty"
    empty.mkdir()
    rundir.check_is_run_dir(empty)


# -- deleted checkpoints -------------------------------------------------------------------


def test_deleted_checkpoints_are_refused_then_restarted_on_purpose(tmp_path):
    run_dir = tmp_path / "run"
    assert crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    first = deterministic_columns(read_csv(run_dir / "metrics.csv"))
    shutil.rmtree(run_dir / "checkpoints")
    before = _files(run_dir)
    result = crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result, "crl-train: config error: checkpoint.restart:")
    assert "no checkpoint in checkpoints/" in line and "checkpoint.restart=true" in line
    assert _files(run_dir) == before
    again = crl_train(*TINY, "checkpoint.restart=true", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert deterministic_columns(read_csv(run_dir / "metrics.csv")) == first
    # repeated (a requeue): the run now has checkpoints, so it resumes instead of starting over
    resumed = crl_train(*TINY, "checkpoint.restart=true", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0 and "checkpoint.restart=true ignored" in resumed.stdout + resumed.stderr
    assert "resuming exactly from epoch_000002" in (run_dir / "train.log").read_text()


def test_rows_before_the_first_checkpoint_are_recomputed_without_asking(tmp_path):
    # a kill between logging epoch 1 and saving it: the row is recomputed, nothing is lost
    (tmp_path / "metrics.csv").write_text("epoch,env_steps\n1,280\n")
    rundir.check_resumable(tmp_path, has_checkpoint=False, first_checkpoint_epoch=1)
    (tmp_path / "metrics.csv").write_text("epoch,env_steps\n1,280\n2,480\n")
    with pytest.raises(rundir.RunDirError, match="2 logged epochs"):
        rundir.check_resumable(tmp_path, has_checkpoint=False, first_checkpoint_epoch=1)


# -- Ctrl-C ------------------------------------------------------------------------------


def _interrupt_at_phase(monkeypatch, call: int):
    """SIGINT delivered to this process while update phase number `call` runs."""
    original, calls = Trainer.train_phase, []

    def phase(self, ts):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, ts)

    monkeypatch.setattr(Trainer, "train_phase", phase)


@pytest.mark.parametrize("call, saved", [(3, "epoch_000000_phase_000003"), (12, "epoch_000002_phase_000002"),
                                         (20, "epoch_000004")])
def test_ctrl_c_stops_after_the_running_phase_and_resumes_exactly(tmp_path, monkeypatch, phased_reference, call,
                                                                  saved):
    cfg = from_dict(PHASED)
    _interrupt_at_phase(monkeypatch, call)
    with pytest.raises(Interrupted) as info:
        run_training(cfg, tmp_path)
    assert info.value.checkpoint.name == saved  # not the end of the epoch: the phase it landed in
    assert str(tmp_path) in str(info.value) and "resume with:" in str(info.value)
    assert f"stopped on SIGINT; checkpoint {saved} saved" in (tmp_path / "train.log").read_text()
    monkeypatch.undo()
    run_training(cfg, tmp_path)
    assert deterministic_columns(read_csv(tmp_path / "metrics.csv")) == phased_reference


def test_an_interrupted_rotation_leaves_nothing_half_written(tmp_path, monkeypatch, phased_reference):
    cfg = from_dict(PHASED)
    real_rmtree, calls = shutil.rmtree, []

    def rmtree(path, *args, **kwargs):  # Ctrl-C lands while an old checkpoint is being deleted
        path = __import__("pathlib").Path(path)
        if path.name.startswith(".old_epoch_") and path.exists():
            calls.append(path)
            if len(calls) == 2:
                victim = max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
                victim.unlink()  # half deleted
                raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path)
    monkeypatch.undo()
    names = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert ".old_epoch_000002" in names  # the half-deleted one is out of the epoch_* namespace
    for ckpt in Checkpointer(tmp_path / "checkpoints").complete_checkpoints():
        Checkpointer.verify(ckpt)  # every checkpoint a resume could pick is whole
    run_training(cfg, tmp_path)
    assert deterministic_columns(read_csv(tmp_path / "metrics.csv")) == phased_reference
    assert not any(p.name.startswith(".old_") for p in (tmp_path / "checkpoints").iterdir())


def test_ctrl_c_in_crl_train_prints_the_resume_command_and_resume_continues(tmp_path):
    # 2 epochs of 25 slow phases; periodic checkpoints off: any checkpoint comes from Ctrl-C
    args = [*[a for a in TINY if not a.startswith(("train.total_env_steps", "train.num_epochs", "train.utd_ratio"))],
            "train.total_env_steps=2000", "train.num_epochs=2", "train.utd_ratio=2.0", "checkpoint.every_epochs=100"]
    reference = tmp_path / "reference"
    assert crl_train(*args, f"hydra.run.dir={reference}", cwd=tmp_path).returncode == 0
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(crl_train_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=tmp_path, env=crl_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ((run_dir / "metrics.csv").exists() and len(read_csv(run_dir / "metrics.csv")) >= 1):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"crl-train: run directory {run_dir}" in out
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("crl-train: stopped: interrupted; checkpoint epoch_000001_phase_")
    assert last.endswith(f"resume with: crl-train resume={run_dir}")
    assert len(read_csv(run_dir / "metrics.csv")) == 1  # stopped inside epoch 2, not at its end
    resumed = subprocess.run(crl_train_cmd(f"resume={run_dir}"), cwd=tmp_path, env=crl_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert deterministic_columns(read_csv(run_dir / "metrics.csv")) == deterministic_columns(
        read_csv(reference / "metrics.csv"))
    assert "resuming exactly from epoch_000001_phase_" in (run_dir / "train.log").read_text()


def crl_train_in_process(monkeypatch, capsys, *args):
    """crl-train's main() in this process (no interpreter start-up): (exit code, stderr)."""
    from crl.apps import train as app

    monkeypatch.setattr("sys.argv", ["crl-train", *args])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    return exit_info.value.code, capsys.readouterr().err


def _one_line(err, start):
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), err[-2000:]
    return lines[0]


def test_resume_of_a_directory_that_is_not_a_run_is_one_line(tmp_path, monkeypatch, capsys):
    code, err = crl_train_in_process(monkeypatch, capsys, f"resume={tmp_path}")
    assert code == 2
    _one_line(err, f"crl-train: config error: resume: '{tmp_path}' is not a crl run directory")


# -- one line for Hydra's errors and for a sweep's bad job -------------------------------


@pytest.mark.parametrize("override, expected", [
    ("env=nope", "env=nope: no such env config; choose one of ant, ant_ball,"),
    ("+experiment=nope", "+experiment=nope: no such experiment config; choose one of ablations,"),
    ("train.foo=1", "train.foo: unknown key (in 'train.foo=1'); allowed keys here: num_envs, num_seeds, total_env_steps,"),
    ("network.depth==", "malformed override 'network.depth=='"),
])
def test_hydra_errors_are_one_line_exit_2_and_leave_nothing(tmp_path, monkeypatch, capsys, override, expected):
    run_dir = tmp_path / "out" / "run"
    code, err = crl_train_in_process(monkeypatch, capsys, *TINY, override, f"hydra.run.dir={run_dir}")
    assert code == 2
    line = _one_line(err, "crl-train: config error: ")
    assert expected in line, line
    assert "point_u_maze" in line or override != "env=nope"
    assert not (tmp_path / "out").exists()


def test_a_sweep_with_a_bad_third_job_fails_before_any_job_trains(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, err = crl_train_in_process(monkeypatch, capsys, "-m", *TINY, "network.depth=4,8,6", "seed=0,1",
                                     f"hydra.sweep.dir={sweep}")
    assert code == 2
    line = _one_line(err, "crl-train: config error: job 4 (network.depth=6 seed=0): network.depth: 6")
    assert "multiple of 4" in line
    assert not sweep.exists()
    # a bad env parameter in one job is found before training too
    code, err = crl_train_in_process(monkeypatch, capsys, "-m", *TINY, "env=point_u_maze,point_open",
                                     "env.params.speed=0.9", f"hydra.sweep.dir={sweep}")
    assert code == 2 and "job 0 (env=point_u_maze): env.params.speed" in err
    assert not sweep.exists()


# -- the library writes what the tools read; run dir names -------------------------------


def test_run_training_writes_config_yaml_that_the_tools_read(tmp_path):
    from crl.apps.collect import load_run

    cfg = from_dict(tiny_config(network={"depth": 8}))
    run_training(cfg, tmp_path)
    assert from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == cfg
    loaded_cfg, _, params = load_run(tmp_path)
    assert loaded_cfg == cfg and params["actor"]["trunk"]["blocks"]["DenseNormAct_0"]["Dense_0"]["kernel"].shape[0] == 2
    log = (tmp_path / "train.log").read_text()
    assert "epoch 2/2: env steps" in log and "checkpoint epoch_000002 saved" in log


def test_run_dir_names_show_both_depths_when_they_differ():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from crl.apps.train import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        apart = compose("config", ["network.actor_depth=8", "network.critic_depth=32"], return_hydra_config=True)
        same = compose("config", ["network.depth=16"], return_hydra_config=True)
        assert "_a8_c32_s0" in apart.hydra.run.dir and same.hydra.run.dir.endswith("_d16_s0")
    GlobalHydra.instance().clear()
