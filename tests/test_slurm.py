"""A real Slurm cluster: experiments/slurm/start_local_cluster.sh starts munge, slurmctld
and slurmd on this machine, and Hydra's submitit_slurm launcher runs a sweep on it.

Needs root and Debian's slurm-wlm and munge (.ci/run installs them). Without them the
tests skip, except under CI (CI=true), where they fail: CI must exercise the cluster."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
from helpers import TINY  # the suite's tiny config

REPO = pathlib.Path(__file__).resolve().parents[1]
START = REPO / "experiments" / "slurm" / "start_local_cluster.sh"
STOP = REPO / "experiments" / "slurm" / "stop_local_cluster.sh"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol")


def _missing_binaries() -> list[str]:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [b for b in SLURM_BINARIES if shutil.which(b, path=path) is None]


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the Slurm tests: .ci/run installs slurm-wlm and munge)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_env():
    missing = _missing_binaries()
    if missing:
        _unavailable(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        _unavailable("starting slurmd and munged needs root")
    result = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"start_local_cluster.sh failed:\n{result.stderr[-3000:]}"
    exports = [line for line in result.stdout.splitlines() if line.startswith("export SLURM_CONF=")]
    assert len(exports) == 1, result.stdout
    conf = exports[0].split("=", 1)[1]
    started_here = "already running" not in result.stderr
    env = {**os.environ, "SLURM_CONF": conf, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), "HYDRA_FULL_ERROR": "1"}
    yield env
    if started_here:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=60)


def test_cluster_runs_a_batch_job(slurm_env, tmp_path):
    out = tmp_path / "hello.out"
    submit = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello from $SLURM_JOB_ID"],
                            env=slurm_env, capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip().split(";")[0]
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and "hello" in out.read_text()):
        time.sleep(0.5)
    assert out.read_text().strip() == f"hello from {job_id}"


def test_submitit_slurm_launcher_runs_a_two_job_sweep(slurm_env, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "crl.apps.train", "-m", "hydra/launcher=submitit_slurm",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10", *TINY, "network.depth=0,4",
         f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env=slurm_env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.csv"))
    assert runs == ["0_point_u_maze_a0_c0_w16_b16_s0", "1_point_u_maze_a4_c4_w16_b16_s0"]
    for run in runs:
        lines = (sweep_dir / run / "metrics.csv").read_text().splitlines()
        assert len(lines) == 1 + 2, run  # header and two epochs
    # The jobs ran under Slurm: submitit keeps each array task's log under .submitit/<job id>/.
    logs = list((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(slurm_env, tmp_path):
    """USR2 is Slurm's warning before preemption or the time limit: the run checkpoints at
    the end of its epoch, submitit requeues the job, and the rerun resumes in the same run dir."""
    sweep_dir = tmp_path / "sweep"
    epochs = 20
    args = [
        "train.num_envs=16", "train.total_env_steps=16000", f"train.num_epochs={epochs}", "train.unroll_length=50",
        "train.prefill_steps=100", "train.utd_ratio=0.01", "train.batch_size=256", "train.buffer_size=400",
        "train.num_eval_envs=4", "env.episode_length=50", "logging.progress_bar=false",
    ]
    main = subprocess.Popen(
        [sys.executable, "-m", "crl.apps.train", "-m", "hydra/launcher=submitit_slurm",
         "hydra.launcher.cpus_per_task=2", "hydra.launcher.timeout_min=30", *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 300
        metrics = None
        while time.time() < deadline:  # wait for the first epoch: the training loop is running
            found = list(sweep_dir.glob("*/metrics.csv"))
            if found and len(found[0].read_text().splitlines()) >= 2:
                metrics = found[0]
                break
            assert main.poll() is None, main.stdout.read()[-3000:]
            time.sleep(0.2)
        assert metrics is not None, "the job never finished an epoch"
        (job_id,) = [p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir()]
        signal = subprocess.run(["scancel", "--signal=USR2", job_id], env=slurm_env, capture_output=True, text=True)
        assert signal.returncode == 0, signal.stderr
        output, _ = main.communicate(timeout=400)
    finally:
        if main.poll() is None:
            main.kill()
            subprocess.run(["scancel", "--full", "--user=root"], env=slurm_env, capture_output=True)
    assert main.returncode == 0, output[-4000:]
    lines = metrics.read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in lines] == list(range(1, epochs + 1))
    job_log = "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.err"))
    assert "preempted" in job_log, job_log[-3000:]
    run_log = (metrics.parent / "train.log").read_text()
    assert "resum" in run_log.lower(), run_log[-3000:]
