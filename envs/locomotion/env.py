"""`LocomotionEnv`: a GoalEnv bound to one task of the locomotion family (see __init__)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from brax.io import mjcf

import envs.locomotion.mjcf as locomotion_mjcf
from envs.base import Drawable, EnvSpec, EnvState, GoalEnv
from envs.locomotion.robots import configure_backend
from envs.locomotion.scene import Scene, TaskData
from envs.maze_layouts import MazeLayout
from envs.mujoco_draw import MujocoPainter


class LocomotionEnv(GoalEnv, Drawable):
    """A GoalEnv bound to one task: a shared `Scene` (physics) plus this task's `TaskData`."""

    def __init__(self, spec: EnvSpec, scene: Scene, task: TaskData, maze: MazeLayout | None,
                 evaluation: Callable[[], LocomotionEnv] | None = None):
        self.spec = spec
        self.scene = scene
        self.task = task
        self.maze = maze
        self._evaluation = evaluation  # builds the env that scores this task (stitching: far pairs)

    def evaluation_env(self) -> LocomotionEnv:
        return self if self._evaluation is None else self._evaluation()

    # -- GoalEnv ----------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        return self.scene.reset(self.task, key)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        return self.scene.step(self.task, state, action)

    # -- for tests, benchmarks and analysis --------------------------------------------------

    def with_task(self, task: TaskData) -> LocomotionEnv:
        """The same env over other (possibly traced) task data: lets one jitted function
        serve every maze of a robot, e.g. `jit(lambda task, k: env.with_task(task).reset(k))`."""
        return LocomotionEnv(self.spec, self.scene, task, self.maze)

    def sample_episode(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(q, qd, goal) that `reset(key)` starts from; cheap (no physics)."""
        return self.scene.sample_episode(self.task, key)

    def _replace_pose(self, state: EnvState, q: jax.Array, qd: jax.Array) -> EnvState:
        return self.scene.init(self.task, q, qd, state.goal).replace(info=state.info)

    def set_torso_xy(self, state: EnvState, xy: jax.Array) -> EnvState:
        """Place the torso at `xy` (same height, orientation, joints and velocities)."""
        q = state.physics.q.at[:2].set(xy)
        return self._replace_pose(state, q, state.physics.qd)

    def set_goal_coords(self, state: EnvState, coords: jax.Array) -> EnvState:
        """Move what the goal measures (torso or ball) so that state[goal_indices] = coords."""
        q = state.physics.q.at[jnp.asarray(self.goal_indices)].set(coords)
        return self._replace_pose(state, q, state.physics.qd)

    def set_torso_velocity(self, state: EnvState, velocity: jax.Array) -> EnvState:
        """Set the root's linear velocity (world frame; 2 or 3 components)."""
        qd = state.physics.qd.at[: velocity.shape[0]].set(velocity)
        return self._replace_pose(state, state.physics.q, qd)

    def torso_xy(self, state: EnvState) -> jax.Array:
        return state.physics.q[:2]

    @property
    def dt(self) -> float:
        return self.scene.dt

    @property
    def backend(self) -> str:
        return self.scene.backend

    # -- drawing ------------------------------------------------------------------------------

    def pose(self, physics) -> dict:
        return {"q": physics.q, "qd": physics.qd}

    def painter(self, width: int, height: int, camera: str | None = None):
        return MujocoPainter(self.render_system().mj_model, self.success_radius, width, height, camera, follow=True)

    def brax_system(self):
        return self.render_system()

    def render_system(self):
        """A Brax System with every wall of the maze in place (the physics System only has
        the moving window of wall slots). Same bodies and q layout, so pipeline states of
        this env render with it, e.g. via brax.io.image.render_array."""
        return _render_system(self.scene, self.maze)


@functools.lru_cache(maxsize=None)
def _render_system(scene: Scene, maze: MazeLayout | None):
    walls = [] if maze is None else [(x, y) for x, y, _ in maze.wall_boxes(scene.robot.cell_size)]
    xml = locomotion_mjcf.build(scene.robot, static_walls=walls, ball=scene.ball, block=scene.block,
                                target=scene.target)
    return configure_backend(mjcf.loads(xml), scene.robot, scene.backend, scene.xml_timestep)[0]
