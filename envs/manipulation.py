"""Goal-conditioned manipulation with a Panda-like arm on MJX: reach, push, bin-pick, grasp.

    env = make("arm_push_easy")           # GoalEnv; obs = concat(state, goal)
    state = env.reset(key); state = env.step(state, action)

All six ids share one MuJoCo model (envs/manipulation_mjcf.py) and one physics step
(envs/manipulation_physics.py); a task is data (envs/manipulation_tasks.py): where the
cube starts, where goals are drawn, where the bins stand, which state coordinates the
goal refers to. `env.with_task(task)` rebinds an env to other (possibly traced) task
data, so one jitted program serves every id (tests and benchmarks use this); a plain
`env.step` of any cube task is the same program as every other cube task's.

State (STATE_DIM = 26): cube position (0:3), cube quaternion (3:7), tool-centre-point
position (7:10), joints 1, 2, 4, 6 (10:14), gripper opening (14), cube linear and angular
velocity (15:21), joint velocities (21:25), gripper opening rate (25).

Goals: push / bin-pick / grasp -> cube x, y, z (indices 0, 1, 2); reach -> tool centre
point (7, 8, 9). arm_grasp's goals float 13-25 cm above the table near the cube's start,
so the cube is only at its goal while held between the fingertips.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from envs.base import EnvSpec, EnvState, GoalEnv, goal_metrics
from envs.manipulation_physics import (
    ACTION_SIZE,
    CONTROL_DT,
    STATE_DIM,
    STATE_LAYOUT,
    ArmModel,
    ArmPhysics,
    action_to_ctrl,
    arm_model,
    cube_off_table,
    simulate,
    state_vector,
    tcp_action,
)
from envs.manipulation_tasks import GOAL_CANDIDATES, REST_Z, TASKS, TaskData, task_data
from envs.mujoco_draw import MujocoPainter

ENV_IDS = sorted(TASKS)

_CUBE = tuple(range(STATE_LAYOUT["cube_pos"].start, STATE_LAYOUT["cube_pos"].stop))
_TCP = tuple(range(STATE_LAYOUT["tcp_pos"].start, STATE_LAYOUT["tcp_pos"].stop))
GOAL_INDICES = {"cube": _CUBE, "tcp": _TCP}


@dataclasses.dataclass(frozen=True)
class ArmParams:
    """Keyword arguments of `make` (Hydra: env.params.<name>)."""

    episode_length: int = 1000
    success_radius: float = 0.1
    success_radius_easy: float = 0.3
    success_radius_hard: float = 0.03

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                key = "env.episode_length" if f.name == "episode_length" else f"env.params.{f.name}"
                raise ValueError(f"{key}: {value!r} must be a positive number")


def _yaw_quat(yaw: jax.Array) -> jax.Array:
    return jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])


class ArmEnv(GoalEnv):
    """One arm task: the shared model plus this task's TaskData. EnvState.physics is an
    ArmPhysics (qpos, qvel, solver warm start, mocap positions)."""

    def __init__(self, spec: EnvSpec, params: ArmParams, task: TaskData):
        self.spec = spec
        self.params = params
        self.task = task
        self.model: ArmModel = arm_model()

    def with_task(self, task: TaskData) -> ArmEnv:
        """The same env over other (possibly traced) task data, e.g.
        `jit(lambda task, key: env.with_task(task).reset(key))` serves all six ids.
        `spec` stays this env's; read shapes and goal indices from the task's own env."""
        return ArmEnv(self.spec, self.params, task)

    # -- pieces ---------------------------------------------------------------------------

    def _finish(self, state: EnvState, physics: ArmPhysics, tcp: jax.Array) -> EnvState:
        """Observation, metrics, reward and done for a physics state."""
        p = self.params
        s = state_vector(self.model, physics, tcp)
        metrics = goal_metrics(s[self.task.goal_index], state.goal, p.success_radius, p.success_radius_easy)
        metrics["success_hard"] = (metrics["dist"] < p.success_radius_hard).astype(jnp.float32)
        broken = 1.0 - jnp.all(jnp.isfinite(s)).astype(jnp.float32)  # never seen; ends the episode
        return state.replace(
            physics=physics,
            obs=jnp.concatenate([s, state.goal]),
            reward=metrics["success"],
            done=jnp.maximum(cube_off_table(s[:3]), broken),
            metrics=metrics,
        )

    # -- GoalEnv --------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        t, m = self.task, self.model
        k_cube, k_goal = jax.random.split(key)
        cube_xy = jax.random.uniform(k_cube, (2,), minval=t.cube_low, maxval=t.cube_high)
        cube_pos = jnp.concatenate([cube_xy, jnp.array([REST_Z], jnp.float32)])
        # Face the base: the fingers' closing axis turns with joint 1, so they meet two faces.
        cube_quat = _yaw_quat(jnp.arctan2(cube_xy[1], cube_xy[0]))
        home = m.home
        qpos = home.qpos.at[m.cube_qpos : m.cube_qpos + 3].set(cube_pos)
        qpos = qpos.at[m.cube_qpos + 3 : m.cube_qpos + 7].set(cube_quat)
        home_tcp = jnp.asarray(m.home_tcp, jnp.float32)
        start = state_vector(m, home.replace(qpos=qpos), home_tcp)[t.goal_index]
        goal = self._draw_goal(k_goal, cube_xy, start)
        mocap = home.mocap_pos.at[m.bins_mocap].set(t.bins).at[m.goal_mocap].set(goal)
        physics = home.replace(qpos=qpos, mocap_pos=mocap)
        zero = jnp.zeros((), jnp.float32)
        state = EnvState(
            physics=physics,
            obs=jnp.zeros((self.spec.obs_size,), jnp.float32),
            goal=goal,
            reward=zero,
            done=zero,
            metrics={k: zero for k in ("dist", "success", "success_easy", "success_hard")},
        )
        return self._finish(state, physics, home_tcp)

    def _draw_goal(self, key: jax.Array, cube_xy: jax.Array, start: jax.Array) -> jax.Array:
        """A goal from the task's box, at least goal_min_dist from `start` (the achieved
        goal at reset): the first such of GOAL_CANDIDATES draws, else the farthest."""
        t = self.task
        goals = jax.random.uniform(key, (GOAL_CANDIDATES, 3), minval=t.goal_low, maxval=t.goal_high)
        goals = goals.at[:, :2].add(t.goal_relative_to_cube * cube_xy)
        dist = jnp.linalg.norm(goals - start, axis=1)
        far = dist >= t.goal_min_dist
        return goals[jnp.where(jnp.any(far), jnp.argmax(far), jnp.argmax(dist))]

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        physics, tcp = simulate(self.model, state.physics, action_to_ctrl(action))
        return self._finish(state, physics, tcp)

    # -- helpers for tests, scripted demos and rendering --------------------------------

    def set_cube_pos(self, state: EnvState, xyz: jax.Array) -> EnvState:
        """Place the cube at xyz, at rest (keeps the goal); usable inside jit."""
        m, physics = self.model, state.physics
        qpos = physics.qpos.at[m.cube_qpos : m.cube_qpos + 3].set(jnp.asarray(xyz, jnp.float32))
        qvel = physics.qvel.at[m.cube_qvel : m.cube_qvel + 6].set(0.0)
        return self._finish(state, physics.replace(qpos=qpos, qvel=qvel), state.obs[STATE_LAYOUT["tcp_pos"]])

    def set_goal(self, state: EnvState, goal: jax.Array) -> EnvState:
        """Replace the goal (and move the marker); usable inside jit."""
        goal = jnp.asarray(goal, jnp.float32)
        physics = state.physics
        physics = physics.replace(mocap_pos=physics.mocap_pos.at[self.model.goal_mocap].set(goal))
        return self._finish(state.replace(goal=goal), physics, state.obs[STATE_LAYOUT["tcp_pos"]])

    @staticmethod
    def tcp_action(xyz, gripper: float = 1.0):
        """Host-side IK: the action that servos the tool centre point to xyz."""
        return tcp_action(xyz, gripper)

    @property
    def dt(self) -> float:
        """Seconds of simulated time per env step."""
        return CONTROL_DT

    def pose(self, physics) -> dict:
        return {"q": physics.qpos, "mocap_pos": physics.mocap_pos}

    def painter(self, width: int, height: int, camera: str | None = None):
        return MujocoPainter(self.model.mj, self.success_radius, width, height, camera)


def make(env_id: str, **kwargs) -> ArmEnv:
    """Build an arm env; kwargs are ArmParams fields (Hydra: env.params.<name>)."""
    if env_id not in TASKS:
        raise KeyError(f"env.id: unknown manipulation env {env_id!r}; known: {', '.join(ENV_IDS)}")
    allowed = sorted(f.name for f in dataclasses.fields(ArmParams))
    for name in kwargs:
        if name not in allowed:
            raise KeyError(f"env.params.{name}: not a parameter of {env_id}; allowed: {', '.join(allowed)}")
    params = ArmParams(**kwargs)
    task = TASKS[env_id]
    goal_indices = GOAL_INDICES[task.goal]
    spec = EnvSpec(
        env_id=env_id,
        state_dim=STATE_DIM,
        goal_indices=goal_indices,
        action_size=ACTION_SIZE,
        episode_length=params.episode_length,
        success_radius=params.success_radius,
        success_radius_easy=params.success_radius_easy,
    )
    return ArmEnv(spec, params, task_data(task, goal_indices))
