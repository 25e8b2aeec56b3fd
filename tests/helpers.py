"""Shared by the tests that drive `crl-train` as a subprocess."""

import csv
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

# A run that compiles and trains in seconds: 4 envs, 20-step episodes, width 16.
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

TIMING_COLUMNS = {"wall_time", "train/env_steps_per_second", "train/sgd_steps_per_second"}


def crl_env():
    return {**os.environ, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), "HYDRA_FULL_ERROR": "1"}


def crl_train_cmd(*args):
    return [sys.executable, "-m", "crl.hydra_main", *args]


def crl_train(*args, cwd, timeout=600):
    return subprocess.run(crl_train_cmd(*args), cwd=cwd, env=crl_env(), capture_output=True, text=True, timeout=timeout)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def deterministic_columns(rows):
    """metrics.csv rows without the wall-clock columns (which differ run to run)."""
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def tensorboard_scalars(run_dir):
    """{tag: [(step, value), ...]} as TensorBoard would show it (purged events removed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(pathlib.Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if tag not in TIMING_COLUMNS
    }
