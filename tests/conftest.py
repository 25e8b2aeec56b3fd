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


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return -1


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs(request):
    """Drop the compiled programs of each module when it ends. Every XLA CPU executable
    holds a few memory mappings (about 3 for a tiny one, measured); kept for the whole
    suite they approach Linux's vm.max_map_count (65,530). Five segmentation faults near
    the end of full runs, inside XLA compilation or executable loading in
    test_run_safety (never that module alone), fit that. The persistent cache makes the
    next module's recompiles cheap. CRL_TEST_MAPS_LOG=<file> logs the count per module."""
    yield
    before = _memory_maps()
    jax.clear_caches()
    log = os.environ.get("CRL_TEST_MAPS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{request.module.__name__}: {before} memory maps, {_memory_maps()} after clearing\n")

# tests/helpers.py is imported as a plain module by the subprocess-driving tests.
import sys  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
