"""`crl-train` end to end, as a user runs it (subprocesses, tiny configs)."""

import csv
import math
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = [
    "train.num_envs=4",
    "train.total_env_steps=400",
    "train.num_epochs=2",
    "train.unroll_length=10",
    "train.prefill_steps=20",
    "train.utd_ratio=0.25",
    "train.batch_size=16",
    "train.buffer_size=200",
    "train.num_eval_envs=4",
    "env.episode_length=20",
    "network.width=16",
    "logging.progress_bar=false",
]


def crl_train(*args, cwd):
    env = {**os.environ, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "crl.hydra_main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_tensorboard_csv_config_and_params(tmp_path):
    run_dir = tmp_path / "run"
    result = crl_train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        for name in ("eval/time_at_goal", "eval/success_any", "train/critic_loss", "train/actor_loss", "train/alpha"):
            assert math.isfinite(float(r[name])), name
    assert (run_dir / "config.yaml").read_text().count("episode_length: 20") == 1
    assert (run_dir / "params.msgpack").stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("eval/time_at_goal", "train/critic_loss", "train/actor_loss", "train/entropy",
                "train/categorical_accuracy", "train/logits_pos", "train/logits_neg", "train/logsumexp",
                "train/env_steps_per_second", "eval/success_any"):
        assert tag in tags, tag
    events = acc.Scalars("eval/time_at_goal")
    assert [e.step for e in events] == [int(r["env_steps"]) for r in rows]
    assert [pytest.approx(e.value) for e in events] == [float(r["eval/time_at_goal"]) for r in rows]


def test_multirun_sweeps_depth(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = crl_train("-m", *TINY, "network.depth=0,4", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in sweep_dir.glob("*/metrics.csv"))
    assert len(runs) == 2
    assert [p.name for p in runs] == ["0_point_u_maze_a0_c0_w16_b16_s0", "1_point_u_maze_a4_c4_w16_b16_s0"]
    for run in runs:
        assert len(read_csv(run / "metrics.csv")) == 2


@pytest.mark.parametrize(
    "override, key",
    [
        ("network.depth=6", "network.actor_depth"),
        ("network.critic_depth=3", "network.critic_depth"),
        ("env.id=point_nowhere", "env.id"),
        ("train.energy=manhattan", "train.energy"),
        ("+train.bogus=1", "train.bogus"),
    ],
)
def test_bad_config_fails_with_one_line_and_leaves_nothing(tmp_path, override, key):
    run_dir = tmp_path / "run"
    result = crl_train(*TINY, override, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("crl-train: config error")]
    assert len(lines) == 1 and key in lines[0], result.stderr[-2000:]
    assert not run_dir.exists()
