"""The goal-conditioned environment interface every task implements.

An env works on ONE environment instance (no batch axis); callers vmap it.
`reset(key)` and `step(state, action)` must be pure and jittable.

Observation layout (the contract the trainer relies on):

    obs = concat(state, goal)      shape (state_dim + goal_dim,)
    state[goal_indices]            lives in the same space as `goal`

so that a future *state* of a trajectory can be turned into a goal by
`state[..., goal_indices]` (hindsight relabelling).

Every step reports, in `EnvState.metrics`, at least:

    dist          Euclidean distance from state[goal_indices] to the goal
    success       1.0 when dist < success_radius, else 0.0
    success_easy  1.0 when dist < success_radius_easy, else 0.0

`done` is 1.0 when the episode terminated by itself (a robot that fell);
ending an episode after `episode_length` steps is the job of
`envs.wrappers.TrainingEnv`, not of the env.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class EnvState:
    physics: Any  # backend-specific pytree (a point position, a Brax pipeline state, ...)
    obs: jax.Array  # (state_dim + goal_dim,)
    goal: jax.Array  # (goal_dim,)
    reward: jax.Array  # scalar float32: 1.0 inside the success radius (unused by CRL)
    done: jax.Array  # scalar float32: 1.0 when the episode terminated (not truncated)
    metrics: dict  # str -> scalar float32 arrays; see module docstring
    info: dict = struct.field(default_factory=dict)  # wrapper bookkeeping (steps, key, ...)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static facts about an env that the trainer and evaluator need."""

    env_id: str
    state_dim: int
    goal_indices: tuple[int, ...]
    action_size: int
    episode_length: int
    success_radius: float
    success_radius_easy: float

    @property
    def goal_dim(self) -> int:
        return len(self.goal_indices)

    @property
    def obs_size(self) -> int:
        return self.state_dim + self.goal_dim


class GoalEnv(abc.ABC):
    """Base class: subclasses set `spec` and implement reset/step."""

    spec: EnvSpec

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> EnvState:
        """A fresh episode: start state (with small noise) and a newly drawn goal."""

    @abc.abstractmethod
    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One control step; `action` is in [-1, 1]^action_size."""

    def evaluation_env(self) -> GoalEnv:
        """The env that scores a policy trained on this one: itself, unless the task
        evaluates on other episodes (stitching: the far start-goal pairs, envs/stitching.py)."""
        return self

    def goal_reward(self, achieved: jax.Array, goal: jax.Array) -> jax.Array:
        """The env's goal-reaching reward (what `step` reports as `EnvState.reward`): 1.0 where
        the achieved goal coordinates `state[goal_indices]` lie within `success_radius` of
        `goal`, else 0.0. Batched over leading axes; the TD agents learn from it, recomputed
        for relabelled goals."""
        return reached(jnp.linalg.norm(achieved - goal, axis=-1), self.spec.success_radius)

    # Convenience accessors so callers can write env.state_dim etc.
    @property
    def env_id(self) -> str:
        return self.spec.env_id

    @property
    def state_dim(self) -> int:
        return self.spec.state_dim

    @property
    def goal_indices(self) -> tuple[int, ...]:
        return self.spec.goal_indices

    @property
    def goal_dim(self) -> int:
        return self.spec.goal_dim

    @property
    def obs_size(self) -> int:
        return self.spec.obs_size

    @property
    def action_size(self) -> int:
        return self.spec.action_size

    @property
    def episode_length(self) -> int:
        return self.spec.episode_length

    @property
    def success_radius(self) -> float:
        return self.spec.success_radius


class Drawable(abc.ABC):
    """An env that draws itself (crl-render): every family's env class mixes this in, so the
    renderer asks nothing of an env but these methods."""

    dt: float | None = None  # seconds per control step, where the env has a physical clock

    @abc.abstractmethod
    def pose(self, physics) -> dict:
        """What a frame needs from one env's physics, as a dict of arrays (jittable):
        e.g. {"q": generalised coordinates} or {"q": (x, y)} for the point."""

    @abc.abstractmethod
    def painter(self, width: int, height: int, camera: str | None = None):
        """A host-side painter with `episode(pose, goal)` -> frames (uint8 H x W x 3), one
        per time step of `pose` (a dict of (T, ...) arrays as `pose()` returns), and `close()`."""

    def brax_system(self):
        """The Brax System for Brax's HTML viewer; None where the env is not a Brax pipeline."""
        return None


def goal_metrics(
    achieved: jax.Array, goal: jax.Array, radius: float, radius_easy: float
) -> dict[str, jax.Array]:
    """dist / success / success_easy for one env: the shared definition of reaching a goal."""
    dist = jnp.linalg.norm(achieved - goal)
    return {"dist": dist, "success": reached(dist, radius), "success_easy": reached(dist, radius_easy)}


def reached(dist: jax.Array, radius: float) -> jax.Array:
    """1.0 strictly inside the radius, else 0.0: the one definition of reaching a goal."""
    return (dist < radius).astype(jnp.float32)
