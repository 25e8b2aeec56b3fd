"""Evaluation with the deterministic actor: time at goal and the other goal metrics.

One episode per eval env, run for `episode_length` steps without auto-reset. A step
counts only while its episode is running: a robot that fell (done) stops counting.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from envs.base import GoalEnv

# policy(params, state, goal, key) -> action in [-1, 1]; deterministic policies ignore the key
Policy = Callable[[object, jax.Array, jax.Array, jax.Array], jax.Array]


def rollout(env: GoalEnv, policy: Policy, params, key: jax.Array, num_envs: int, steps: int,
            record: Callable | None = None, with_actions: bool = False) -> dict:
    """`num_envs` episodes of `steps` steps without auto-reset: the one rollout that both
    evaluation and crl-render run. Time-major arrays (steps, num_envs):

    at_goal, at_goal_easy   inside the success radius while the episode runs (else 0)
    dist                    distance to the goal (frozen once the episode ended)
    running                 1 while the episode runs (a robot that fell stops it)
    goal                    (num_envs, goal_dim) the episodes' goals

    With `record(physics) -> pytree`, also `start` (record of the reset states) and
    `record` (of the state after each step), e.g. the poses a video draws.
    With `with_actions`, also `state` (steps, num_envs, state_dim), the state each action
    was chosen in, and `action` (steps, num_envs, action_size), e.g. for phi(s, a).
    """
    state_dim = env.state_dim
    reset_key, policy_key = jax.random.split(key)
    start = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def step(carry, step_key):
        env_state, running = carry
        obs = env_state.obs
        action = policy(params, obs[:, :state_dim], obs[:, state_dim:], step_key)
        nxt = jax.vmap(env.step)(env_state, action)
        m = nxt.metrics
        out = {
            "at_goal": m["success"] * running,
            "at_goal_easy": m["success_easy"] * running,
            "dist": m["dist"],
            "running": running,
        }
        if record is not None:
            out["record"] = jax.vmap(record)(nxt.physics)
        if with_actions:
            out["state"], out["action"] = obs[:, :state_dim], action
        still = running * (1.0 - nxt.done)
        # Freeze finished episodes so their final distance stays what it was.
        nxt = jax.tree.map(
            lambda new, old: jnp.where(still.reshape(still.shape + (1,) * (new.ndim - 1)) > 0, new, old)
            if new.ndim >= 1 else new,
            nxt,
            env_state,
        )
        return (nxt, still), out

    running0 = jnp.ones((num_envs,), jnp.float32)
    _, traj = jax.lax.scan(step, (start, running0), jax.random.split(policy_key, steps))
    traj["goal"] = start.goal
    if record is not None:
        traj["start"] = jax.vmap(record)(start.physics)
    return traj


def evaluate(env: GoalEnv, policy: Policy, params, key: jax.Array, num_envs: int, episode_length: int) -> dict:
    """Mean over `num_envs` episodes (of `rollout`) of:

    time_at_goal   steps spent within the success radius
    success_any    1 if the episode was within the radius at least once
    success_easy_any   the same for the env's easy radius
    final_dist     distance to the goal at the episode's last step
    min_dist       closest approach to the goal
    episode_length steps until termination (or the full length)
    """
    traj = rollout(env, policy, params, key, num_envs, episode_length)
    steps = jnp.sum(traj["running"], axis=0)
    last = jnp.maximum(steps.astype(jnp.int32) - 1, 0)
    final_dist = traj["dist"][last, jnp.arange(num_envs)]
    masked_dist = jnp.where(traj["running"] > 0, traj["dist"], jnp.inf)
    return {
        "time_at_goal": jnp.mean(jnp.sum(traj["at_goal"], axis=0)),
        "success_any": jnp.mean(jnp.max(traj["at_goal"], axis=0)),
        "success_easy_any": jnp.mean(jnp.max(traj["at_goal_easy"], axis=0)),
        "final_dist": jnp.mean(final_dist),
        "min_dist": jnp.mean(jnp.min(masked_dist, axis=0)),
        "episode_length": jnp.mean(steps),
    }


def random_policy(action_size: int) -> Policy:
    """Uniform random actions in [-1, 1]: the baseline a trained agent must beat."""

    def policy(params, state, goal, key):
        del params, goal
        return jax.random.uniform(key, (state.shape[0], action_size), minval=-1.0, maxval=1.0)

    return policy
