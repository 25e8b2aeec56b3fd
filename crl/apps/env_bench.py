"""Timing vectorised env rollouts, shared by the env benchmark scripts under experiments/.

Each program runs a `lax.scan` of uniformly random actions through
`envs.wrappers.TrainingEnv` (vmap, truncation, auto-reset), the way the trainer steps
envs. The task is an argument, so ids that share a model share one compiled program.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import time

import jax
import jax.numpy as jnp

from crl.apps.bench import machine_info
from envs.wrappers import TrainingEnv


def rollout_programs(env, num_envs: int, length: int):
    """Jitted (reset(task, rng) -> state, rollout(task, state, rng) -> state) for `env`'s model."""

    def reset(task, rng):
        return TrainingEnv(env.with_task(task)).reset(rng, num_envs)

    def rollout(task, state, rng):
        training = TrainingEnv(env.with_task(task))

        def body(s, k):
            action = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return training.step(s, action), None

        return jax.lax.scan(body, state, jax.random.split(rng, length))[0]

    return jax.jit(reset), jax.jit(rollout)


def time_rollout(programs, task, repeats: int) -> dict:
    """First call (compile + warm-up) and best of `repeats` timed rollouts of `task`."""
    reset, rollout = programs
    rng = jax.random.PRNGKey(0)
    start = time.perf_counter()
    state = rollout(task, reset(task, rng), rng)
    jax.block_until_ready(state)
    first_call = time.perf_counter() - start
    best = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        state = rollout(task, state, jax.random.fold_in(rng, i + 1))
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "first_call_seconds": first_call, "finite": bool(jnp.isfinite(state.obs).all())}


def write_report(out: str | pathlib.Path, benchmark: str, quick: bool, rows: list[dict], **extra) -> None:
    """The JSON every env benchmark writes: what, when, where, and one row per measurement."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": benchmark,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        **extra,
        "machine": machine_info(),
        "quick": quick,
        "results": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
