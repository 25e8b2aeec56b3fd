"""Goal-conditioned Brax locomotion and navigation: ant, humanoid, their mazes, ant_ball, ant_push.

    env = make("ant_u4_maze", backend="spring", episode_length=1000)

Observation = state followed by the goal. The state starts with the full generalised
position q, so the torso x, y (ant) or x, y, z (humanoid) are state[0:2] / state[0:3]:

    ant, ant mazes   q (15: torso x,y,z, quaternion, 8 hinges) + qd (14)        = 29
    ant_ball         q (15 ant + 7 ball free joint) + qd (14 + 6)               = 42
    ant_push         q (15 ant + 7 block free joint) + qd (14 + 6)              = 42
    humanoid (mazes) q (24) + qd (23) + per-link inertia (110) and velocity (66)
                     + actuator torques (23)                                    = 246

Goal: torso x, y (ant, ant_push, ant mazes), ball x, y (ant_ball), torso x, y, z
(humanoid, z = 1.25). Success within 0.5 of the goal (easy: 2.0). An episode terminates
(done = 1) when the torso height leaves [0.2, 1.0] (ant) or [1.0, 2.0] (humanoid);
truncation at `episode_length` is envs.wrappers.TrainingEnv's job. `_eval` ids use the
evaluation layouts (far goal cells only). See docs/envs_locomotion.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from brax.io import mjcf

from envs import locomotion_mjcf
from envs.base import EnvSpec, EnvState, GoalEnv
from envs.locomotion_robots import BACKENDS, configure_backend
from envs.locomotion_scene import (
    PUSH_LAYOUT,
    SUCCESS_RADIUS,
    SUCCESS_RADIUS_EASY,
    Scene,
    TaskData,
    get_scene,
    maze_task,
    open_task,
)
from envs.maze_layouts import MazeLayout, layout
from envs.mujoco_draw import MujocoPainter

_ANT_MAZES = ["u_maze", "u4_maze", "u5_maze", "big_maze", "hardest_maze"]
_HUMANOID_MAZES = ["u_maze", "big_maze", "hardest_maze"]

# training id -> (robot, task kind, maze layout name or None)
TASKS: dict[str, tuple[str, str, str | None]] = {
    "ant": ("ant", "open", None),
    "ant_ball": ("ant", "ball", None),
    "ant_push": ("ant", "push", "ant_push"),
    "humanoid": ("humanoid", "open", None),
    **{f"ant_{m}": ("ant", "maze", m) for m in _ANT_MAZES},
    **{f"humanoid_{m}": ("humanoid", "maze", m) for m in _HUMANOID_MAZES},
}
TRAINING_IDS = list(TASKS)
EVAL_IDS = {i: f"{i}_eval" for i, (_, kind, _) in TASKS.items() if kind == "maze"}
ENV_IDS = sorted(TRAINING_IDS + list(EVAL_IDS.values()))

PARAMS = ("backend", "episode_length")
DEFAULT_BACKEND = "spring"
DEFAULT_EPISODE_LENGTH = 1000


def _resolve(env_id: str) -> tuple[str, str, MazeLayout | None]:
    """(robot, kind, maze layout) of an id, `_eval` ids mapped to the evaluation layouts."""
    base = env_id[: -len("_eval")] if env_id in EVAL_IDS.values() else env_id
    robot, kind, maze = TASKS[base]
    if maze == "ant_push":
        return robot, kind, PUSH_LAYOUT
    if maze is None:
        return robot, kind, None
    return robot, kind, layout(maze + ("_eval" if base != env_id else ""))


class LocomotionEnv(GoalEnv):
    """A GoalEnv bound to one task: a shared `Scene` (physics) plus this task's `TaskData`."""

    def __init__(self, spec: EnvSpec, scene: Scene, task: TaskData, maze: MazeLayout | None):
        self.spec = spec
        self.scene = scene
        self.task = task
        self.maze = maze

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
        return _render_system(self.scene.robot.name, self.scene.kind, self.scene.backend,
                              self.maze.name if self.maze else "")


@functools.lru_cache(maxsize=None)
def _render_system(robot: str, kind: str, backend: str, maze_name: str):
    scene = get_scene(robot, kind, backend)
    maze = PUSH_LAYOUT if maze_name == PUSH_LAYOUT.name else layout(maze_name) if maze_name else None
    walls = [] if maze is None else [(x, y) for x, y, _ in maze.wall_boxes(scene.robot.cell_size)]
    xml = locomotion_mjcf.build(scene.robot, static_walls=walls, ball=scene.ball, block=scene.block)
    return configure_backend(mjcf.loads(xml), scene.robot, backend)[0]


def make(env_id: str, **kwargs) -> LocomotionEnv:
    """Build a locomotion env. Parameters: backend (spring | generalized | positional | mjx)
    and episode_length (the spec's truncation length, default 1000)."""
    if env_id not in ENV_IDS:
        raise KeyError(f"env.id: unknown locomotion env {env_id!r}; known: {', '.join(ENV_IDS)}")
    unknown = sorted(set(kwargs) - set(PARAMS))
    if unknown:
        raise KeyError(
            f"env.params.{unknown[0]}: not a parameter of {env_id}; allowed: {', '.join(PARAMS)}"
        )
    backend = kwargs.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise ValueError(f"env.params.backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    episode_length = kwargs.get("episode_length", DEFAULT_EPISODE_LENGTH)
    if not isinstance(episode_length, int) or isinstance(episode_length, bool) or episode_length < 1:
        raise ValueError(f"env.episode_length: {episode_length!r} must be a positive integer")

    robot, kind, maze = _resolve(env_id)
    scene = get_scene(robot, kind, backend)
    task = open_task() if maze is None else maze_task(maze, scene.robot.cell_size)
    spec = EnvSpec(
        env_id=env_id,
        state_dim=scene.state_dim,
        goal_indices=scene.goal_indices,
        action_size=scene.action_size,
        episode_length=episode_length,
        success_radius=SUCCESS_RADIUS,
        success_radius_easy=SUCCESS_RADIUS_EASY,
    )
    return LocomotionEnv(spec, scene, task, maze)
