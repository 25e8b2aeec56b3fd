"""Batched training view of a GoalEnv: vmap, episode truncation and auto-reset.

Two auto-reset modes (`reset_mode`):

    fresh  (ours) a finished episode restarts from a *new* start and goal, so a
           goal-conditioned agent sees many goals per env slot. The reset is computed only
           on steps where some env finished (`lax.cond` on the batch), so its cost is paid
           once per episode, not once per step.
    first  (the paper's code, Brax's AutoResetWrapper) a finished episode restarts from
           that slot's first start state and goal, kept in info["first"]: each slot keeps
           one start and one goal for the whole run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.base import EnvState, GoalEnv

RESET_MODES = ("fresh", "first")


def _where(mask: jax.Array, a, b):
    """Per-env select between two batched pytrees (mask has shape (num_envs,))."""

    def pick(x, y):
        m = mask.reshape(mask.shape + (1,) * (x.ndim - 1))
        return jnp.where(m, x, y)

    return jax.tree.map(pick, a, b)


class TrainingEnv:
    """Runs `num_envs` copies of `env`; every method takes and returns batched states.

    info["steps"]       steps taken in the current episode
    info["truncation"]  1.0 on the step that hit the episode length
    info["key"]         per-env PRNG key used to draw the next episode
    info["first"]       reset_mode "first" only: the slot's first state (physics, obs, goal)
    """

    def __init__(self, env: GoalEnv, episode_length: int | None = None, reset_mode: str = "fresh"):
        if reset_mode not in RESET_MODES:
            raise ValueError(f"reset_mode: {reset_mode!r} is not allowed; use one of {', '.join(RESET_MODES)}")
        self.env = env
        self.spec = env.spec
        self.episode_length = int(episode_length or env.spec.episode_length)
        self.reset_mode = reset_mode

    def _fresh(self, keys: jax.Array) -> EnvState:
        split = jax.vmap(jax.random.split)(keys)  # (n, 2, 2)
        state = jax.vmap(self.env.reset)(split[:, 1])
        n = keys.shape[0]
        info = {
            "steps": jnp.zeros((n,), jnp.int32),
            "truncation": jnp.zeros((n,), jnp.float32),
            "key": split[:, 0],
        }
        return state.replace(info=info)

    def reset(self, key: jax.Array, num_envs: int) -> EnvState:
        state = self._fresh(jax.random.split(key, num_envs))
        if self.reset_mode == "first":
            first = {"physics": state.physics, "obs": state.obs, "goal": state.goal}
            state = state.replace(info={**state.info, "first": first})
        return state

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        stepped = jax.vmap(self.env.step)(state.replace(info={}), action)
        steps = state.info["steps"] + 1
        truncated = steps >= self.episode_length
        done = jnp.maximum(stepped.done, truncated.astype(jnp.float32))
        truncation = (truncated & (stepped.done < 0.5)).astype(jnp.float32)
        info = {"steps": steps, "truncation": truncation, "key": state.info["key"]}
        if self.reset_mode == "first":
            info["first"] = state.info["first"]
        stepped = stepped.replace(done=done, info=info)
        finished = done > 0.5

        if self.reset_mode == "first":
            # Brax's AutoResetWrapper: the slot's first physics and observation come back.
            restart = stepped.replace(**stepped.info["first"])
            restart = restart.replace(info={**stepped.info, "steps": jnp.zeros_like(steps)})
            return _where(finished, restart, stepped)

        def reset_finished(s: EnvState) -> EnvState:
            fresh = self._fresh(s.info["key"])
            # Keep the transition's reward/done/metrics; take the new episode's state.
            fresh = fresh.replace(reward=s.reward, done=s.done, metrics=s.metrics)
            fresh = fresh.replace(info={**fresh.info, "truncation": s.info["truncation"]})
            return _where(finished, fresh, s)

        return jax.lax.cond(jnp.any(finished), reset_finished, lambda s: s, stepped)
