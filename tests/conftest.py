"""Shared test setup: a persistent JAX compilation cache so compiled programs are reused
across tests and across runs (CI starts cold; a developer's second run is fast)."""

import os
import pathlib

import jax
import pytest

# Before any test module can start jax's backend: the XLA CPU flag batched arm physics
# needs (envs/manipulation/xla_flags.py; importing envs.manipulation sets it).
import envs.manipulation  # noqa: E402,F401

_CACHE = pathlib.Path(os.environ.get("CRL_JAX_CACHE", pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"))
_CACHE.mkdir(parents=True, exist_ok=True)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)

# tests/helpers.py is imported as a plain module by the subprocess-driving tests.
import sys  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
