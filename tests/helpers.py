"""Shared by the tests that drive `crl-train` as a subprocess."""

import csv
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

# A run that compiles and trains in seconds: 4 envs, 20-step episodes, width 16. The one
# tiny config of the test suite: TINY_CONFIG for the library, TINY (overrides) for crl-train.
TINY_CONFIG = {
    "env": {"episode_length": 20},
    "network": {"width": 16},
    "train": {"num_envs": 4, "total_env_steps": 400, "num_epochs": 2, "unroll_length": 10, "prefill_steps": 20,
              "utd_ratio": 0.25, "batch_size": 16, "buffer_size": 200, "num_eval_envs": 4},
    "logging": {"progress_bar": False},
}


def tiny_config(**sections) -> dict:
    """TINY_CONFIG with some keys of its sections replaced: tiny_config(train={"num_epochs": 5})."""
    merged = {name: dict(values) for name, values in TINY_CONFIG.items()}
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values} if isinstance(values, dict) else values
    return merged


def as_overrides(config: dict) -> list[str]:
    """A nested config as crl-train's key=value overrides."""
    def text(v):
        return str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{section}.{k}={text(v)}" for section, values in config.items() for k, v in values.items()]


TINY = as_overrides(TINY_CONFIG)

TIMING_COLUMNS = {"wall_time", "train/env_steps_per_second", "train/sgd_steps_per_second"}


def crl_env():
    return {**os.environ, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), "HYDRA_FULL_ERROR": "1"}


def crl_train_cmd(*args):
    return [sys.executable, "-m", "crl.apps.train", *args]


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
