"""The applications over the `crl` library: thin command-line tools and analysis helpers.

    train.py      crl-train: the Hydra entry point (the only module that imports Hydra)
    plan.py       crl-train --plan: each job's memory from XLA's analysis of its programs
    callbacks.py  training-loop callbacks that need application libraries (tqdm, videos, W&B)
    bench.py      crl-bench: update FLOP/s, collection, buffer, training split, memory
    env_bench.py  env rollout timing shared by experiments/bench_*_envs.py
    collect.py    crl-collect: a sweep's runs as one table (pandas)
    render.py     crl-render: rollout videos of a trained policy (MuJoCo, imageio)
    export_data.py  crl-export-data: a run's replay buffer as an OGBench-layout dataset
    analysis.py   the critical-depth rule and critic value maps (the depth notebook)
    stats.py      interval statistics: IQM, stratified-bootstrap CIs, probability of improvement, profiles
    figures.py    the paper's explanatory figures as data: actor x critic depth grid, embeddings

Imports flow one way: apps -> crl core -> envs. The core imports nothing from here.
"""

from __future__ import annotations

import os
import pathlib

import jax


def enable_compilation_cache() -> None:
    """Reuse compiled programs across runs (sweeps and renders recompile the same shapes
    otherwise). CRL_JAX_CACHE=off disables it; any other value is the cache directory."""
    where = os.environ.get("CRL_JAX_CACHE", str(pathlib.Path.home() / ".cache" / "crl" / "jax"))
    if where.lower() == "off":
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
