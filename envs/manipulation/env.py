"""ArmEnv: one arm task (tasks.py) on its scene variant (physics.py) as a GoalEnv."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs.base import Drawable, EnvSpec, EnvState, GoalEnv, goal_metrics
from envs.manipulation.mjcf import CONTROL_DT, CUBE_START_Z
from envs.manipulation.params import ArmParams
from envs.manipulation.physics import (
    ArmModel,
    ArmPhysics,
    Kinematics,
    action_to_ctrl,
    arm_model,
    home_kinematics,
    kinematics,
    simulate,
)
from envs.manipulation.tasks import (
    GRASP,
    GRASP_OFFSET,
    GRASP_OPENING,
    GRASP_SUCCESS,
    REACH,
    ArmTask,
)
from envs.mujoco_draw import MujocoPainter

METRICS = ("dist", "success", "success_easy", "success_hard")


@struct.dataclass
class TaskData:
    """A task's start and goal regions as arrays: `env.with_task(data)` lets one jitted
    program take them as an argument (ids on one scene, e.g. both push tasks, share it)."""

    cube_centre: jax.Array  # (2,)
    cube_noise: jax.Array  # ()
    goal_centre: jax.Array  # (3,)
    goal_noise: jax.Array  # (3,)

    @classmethod
    def of(cls, task: ArmTask) -> TaskData:
        f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return cls(f32(task.cube_centre), f32(task.cube_noise), f32(task.goal_centre), f32(task.goal_noise))


class ArmEnv(GoalEnv, Drawable):
    """EnvState.physics is an ArmPhysics (qpos, qvel, solver warm start, marker)."""

    def __init__(self, spec: EnvSpec, params: ArmParams, task: ArmTask, data: TaskData | None = None):
        self.spec = spec
        self.params = params
        self.task = task
        self.task_data = TaskData.of(task) if data is None else data
        self.model: ArmModel = arm_model(task.scene)

    def with_task(self, data: TaskData) -> ArmEnv:
        """This env with other (possibly traced) start and goal regions."""
        return ArmEnv(self.spec, self.params, self.task, data)

    # -- observation ------------------------------------------------------------------

    def state_vector(self, qpos: jax.Array, kin: Kinematics) -> jax.Array:
        """The paper's state for this task's layout (see tasks.py)."""
        m = self.model
        arm = qpos[m.arm_qpos]
        link7 = [kin.xpos[m.link7], kin.link7_vel]
        if self.task.layout == REACH:
            return jnp.concatenate([arm, *link7])
        cube = qpos[m.cube_qpos : m.cube_qpos + 3]
        if self.task.layout == GRASP:
            left, right = kin.xpos[m.fingertips[0]], kin.xpos[m.fingertips[1]]
        else:
            left, right = kin.xpos[m.fingers[0]], kin.xpos[m.fingers[1]]
        gap = jnp.linalg.norm(right - left, keepdims=True)
        tips = [left, right] if self.task.layout == GRASP else []
        return jnp.concatenate([cube, arm, *link7, *tips, gap])

    def _grasp_goal(self, cube: jax.Array) -> jax.Array:
        offset = jnp.array([GRASP_OFFSET, 0.0, 0.0])
        return jnp.concatenate([cube + offset, cube - offset, jnp.array([GRASP_OPENING])])

    def _metrics(self, s: jax.Array, goal: jax.Array) -> dict:
        p = self.params
        metrics = goal_metrics(s[jnp.array(self.spec.goal_indices)], goal, p.success_radius, p.success_radius_easy)
        metrics["success_hard"] = (metrics["dist"] < p.success_radius_hard).astype(jnp.float32)
        if self.task.layout == GRASP:  # the paper: fingertips' midpoint at the cube, right opening
            mid = 0.5 * (s[16:19] + s[19:22])
            near = jnp.linalg.norm(s[:3] - mid)
            opening = jnp.abs(s[22] - GRASP_OPENING)
            for name, (r, o) in GRASP_SUCCESS.items():
                metrics[name] = ((near < r) & (opening < o)).astype(jnp.float32)
        return metrics

    def _finish(self, state: EnvState, physics: ArmPhysics, kin: Kinematics) -> EnvState:
        s = self.state_vector(physics.qpos, kin)
        goal = self._grasp_goal(s[:3]) if self.task.layout == GRASP else state.goal
        physics = physics.replace(mocap_pos=goal[None, :3])
        metrics = self._metrics(s, goal)
        return state.replace(
            physics=physics, obs=jnp.concatenate([s, goal]), goal=goal,
            reward=metrics["success"], done=jnp.zeros((), jnp.float32), metrics=metrics,
        )

    # -- GoalEnv ----------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        t, m = self.task_data, self.model
        k_cube, k_goal = jax.random.split(key)
        qpos = m.home.qpos
        if m.cube_qpos >= 0:
            xy = t.cube_centre + t.cube_noise * jax.random.uniform(k_cube, (2,), minval=-1.0)
            cube = jnp.concatenate([xy, jnp.array([CUBE_START_Z])]).astype(jnp.float32)
            qpos = qpos.at[m.cube_qpos : m.cube_qpos + 7].set(jnp.concatenate([cube, jnp.array([1.0, 0, 0, 0])]))
        goal = t.goal_centre + t.goal_noise * jax.random.uniform(k_goal, (3,), minval=-1.0)
        if self.task.layout == GRASP:
            goal = self._grasp_goal(qpos[m.cube_qpos : m.cube_qpos + 3])
        goal = goal.astype(jnp.float32)
        xpos, vel = home_kinematics(self.task.scene)
        zero = jnp.zeros((), jnp.float32)
        state = EnvState(
            physics=m.home.replace(qpos=qpos), obs=jnp.zeros(self.spec.obs_size, jnp.float32), goal=goal,
            reward=zero, done=zero, metrics={k: zero for k in METRICS},
        )
        return self._finish(state, state.physics, Kinematics(jnp.asarray(xpos), jnp.asarray(vel)))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        return self.step_data(state, action)[0]

    def step_data(self, state: EnvState, action: jax.Array):
        """`step`, also returning the last substep's MJX data (contacts, kinematics)."""
        ctrl = action_to_ctrl(action, self.model.ctrl_size)
        physics, data = simulate(self.model, state.physics, ctrl)
        return self._finish(state, physics, kinematics(self.model, data)), data

    # -- helpers for tests, scripted demos and rendering ------------------------------

    def set_cube(self, state: EnvState, xyz) -> EnvState:
        """Place the cube at xyz, upright and at rest (the goal stays); usable inside jit.
        The observation shows it from the next step on."""
        m, physics = self.model, state.physics
        qpos = physics.qpos.at[m.cube_qpos : m.cube_qpos + 7].set(
            jnp.concatenate([jnp.asarray(xyz, jnp.float32), jnp.array([1.0, 0, 0, 0])]))
        qvel = physics.qvel.at[m.cube_qvel : m.cube_qvel + 6].set(0.0)
        return state.replace(physics=physics.replace(qpos=qpos, qvel=qvel))

    @property
    def dt(self) -> float:
        """Seconds of simulated time per env step."""
        return CONTROL_DT

    # -- drawing ------------------------------------------------------------------------------

    def pose(self, physics) -> dict:
        return {"q": physics.qpos, "mocap_pos": physics.mocap_pos}  # mocap: the goal marker

    def painter(self, width: int, height: int, camera: str | None = None):
        # default: the MJCF's camera facing the arm across the table
        return MujocoPainter(self.model.mj, self.success_radius, width, height, camera or "front")
