"""Physics of the locomotion family: one `Scene` per (robot, task kind, backend).

A Scene owns everything that fixes the shape of the compiled program: the Brax System,
the pipeline, the number of substeps, which q entries are the robot's. Everything that
differs between tasks of the same kind (the maze's wall grid, its start and goal cells)
is a `TaskData` pytree passed to `reset`/`step` as an argument. Consequences:

- all ant mazes (and their _eval variants) share one Scene, and a function jitted with
  the TaskData as an argument compiles once for all of them (tests and benchmarks use
  this; an env bound to one task simply closes over its TaskData);
- the maze's walls are data, so the windowed wall slots (see envs/locomotion/mjcf.py)
  are moved onto the walls around the torso with a gather, not a Python loop.

Task kinds:
    open  no walls. ant: goal on a circle of radius 10 around the start;
          humanoid: random angle, distance 1 to 5, height 1.25.
    maze  walls from a layout; start in the R cell, goal uniform over the G cells'
          centres (+- goal_jitter x cell, 0 by default).
    ball  (ant) a ball starts 2-3 m from the ant; the goal (for the ball) 2-5 m beyond.
    push  (ant) a maze-like arena whose one passage is blocked by a movable block.
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax import base, contact
from brax.generalized import pipeline as generalized_pipeline
from brax.io import mjcf
from brax.mjx import pipeline as mjx_pipeline
from brax.positional import pipeline as positional_pipeline
from brax.spring import pipeline as spring_pipeline
from flax import struct

import envs.locomotion.mjcf as locomotion_mjcf
from envs.base import EnvState, goal_metrics
from envs.locomotion.robots import MAXIMAL, ROBOTS, Robot, configure_backend
from envs.maze_layouts import MazeLayout, layout, layout_names

PIPELINES = {
    "spring": spring_pipeline,
    "generalized": generalized_pipeline,
    "positional": positional_pipeline,
    "mjx": mjx_pipeline,
}
KINDS = ("open", "maze", "ball", "push")

SUCCESS_RADIUS = 0.5
SUCCESS_RADIUS_EASY = 2.0

OPEN_ANT_GOAL_DISTANCE = 10.0
OPEN_HUMANOID_GOAL_DISTANCE = (1.0, 5.0)
BALL_START_DISTANCE = (2.0, 3.0)  # from the ant; clear of its legs (reach about 1.2 m)
BALL_GOAL_DISTANCE = (2.0, 5.0)  # from the ball's start

# The push arena (rows are x, columns y, cells of the ant's 4 m): the ant starts below a
# one-cell gap in a wall; the block 'B' fills the gap, the goals lie beyond it. Shoving the
# block through the gap, into the open row, clears the way.
PUSH_LAYOUT = MazeLayout("ant_push", ("#####", "#GGG#", "#...#", "##B##", "#.R.#", "#####"))

# TaskData of every maze is padded to these shapes so that all mazes share a program.
_ALL_LAYOUTS = [layout(n) for n in layout_names()] + [PUSH_LAYOUT]
MAX_ROWS = max(len(m.rows) for m in _ALL_LAYOUTS)
MAX_COLS = max(len(m.rows[0]) for m in _ALL_LAYOUTS)
MAX_GOALS = max(len(m.goal_cells) for m in _ALL_LAYOUTS)

_WINDOW_OFFSETS = np.array([(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)], np.int32)


@struct.dataclass
class TaskData:
    """Per-task arrays: what distinguishes ant_u_maze from ant_big_maze, as data."""

    wall_grid: jax.Array  # (MAX_ROWS, MAX_COLS) bool, True = wall; padding is open floor
    start_xy: jax.Array  # (2,) nominal torso start
    goal_cells: jax.Array  # (MAX_GOALS, 2) world x, y of goal-cell centres (padded)
    num_goals: jax.Array  # () int32: how many rows of goal_cells are real
    goal_jitter: jax.Array  # () float32: goals uniform within +- this many cells of a centre
    # Stitching (envs/stitching.py): world x, y of each pair's start and goal cell centres
    # and the pairs' probabilities; None (the default) for the maze's own start and goals.
    pair_starts: jax.Array | None = None  # (P, 2)
    pair_goals: jax.Array | None = None  # (P, 2)
    pair_weights: jax.Array | None = None  # (P,)

    def with_pairs(self, starts: np.ndarray, goals: np.ndarray, weights: np.ndarray, cell_size: float) -> TaskData:
        """This task drawing each episode's start and goal cells from the given pairs."""
        return self.replace(pair_starts=jnp.asarray(starts * cell_size, jnp.float32),
                            pair_goals=jnp.asarray(goals * cell_size, jnp.float32),
                            pair_weights=jnp.asarray(weights, jnp.float32))


def open_task() -> TaskData:
    return TaskData(
        wall_grid=jnp.zeros((MAX_ROWS, MAX_COLS), bool),
        start_xy=jnp.zeros((2,), jnp.float32),
        goal_cells=jnp.zeros((MAX_GOALS, 2), jnp.float32),
        num_goals=jnp.ones((), jnp.int32),
        goal_jitter=jnp.zeros((), jnp.float32),
    )


def maze_task(maze: MazeLayout, cell_size: float, goal_jitter: float = 0.0) -> TaskData:
    walls = np.zeros((MAX_ROWS, MAX_COLS), bool)
    walls[: maze.walls.shape[0], : maze.walls.shape[1]] = maze.walls
    goals = np.zeros((MAX_GOALS, 2), np.float32)
    goals[: len(maze.goal_cells)] = maze.goal_cells * cell_size
    return TaskData(
        wall_grid=jnp.asarray(walls),
        start_xy=jnp.asarray(maze.start_cell * cell_size, jnp.float32),
        goal_cells=jnp.asarray(goals),
        num_goals=jnp.asarray(len(maze.goal_cells), jnp.int32),
        goal_jitter=jnp.asarray(goal_jitter, jnp.float32),
    )


def _strong(tree):
    """Drop weak types, so reset and step return identical dtypes (no recompile)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), tree)


def _uniform(key, shape, lo, hi):
    return jax.random.uniform(key, shape, jnp.float32, lo, hi)


def _on_circle(key, radius):
    angle = _uniform(key, (), 0.0, 2 * jnp.pi)
    return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])


class Scene:
    """Pure reset/step over (TaskData, EnvState) for one robot, task kind and backend;
    `target`: the model has the paper's target body (the humanoid's goal_in_state);
    `xml_timestep`: substeps of the model's own timestep (the open humanoid's quirk)."""

    def __init__(self, robot: Robot, kind: str, backend: str, target: bool = False,
                 xml_timestep: bool = False):
        if kind not in KINDS:
            raise ValueError(f"locomotion scene kind {kind!r}; allowed: {', '.join(KINDS)}")
        self.robot, self.kind, self.backend = robot, kind, backend
        self.xml_timestep = xml_timestep
        self.target = None
        if target:
            self.target = locomotion_mjcf.Target(robot.target_height, locomotion_mjcf.TARGET_JOINT_RANGE[kind])
        # Mazes get the moving window of wall slots; the small push arena gets its walls
        # fixed in place, because the block can slide out of a window around the torso.
        self.windowed = kind == "maze"
        self.ball = locomotion_mjcf.Ball() if kind == "ball" else None
        self.block = None
        static_walls = []
        if kind == "push":
            ((bx, by),) = PUSH_LAYOUT.cells("B") * robot.cell_size
            self.block = locomotion_mjcf.Block(x=float(bx), y=float(by))
            static_walls = [(x, y) for x, y, _ in PUSH_LAYOUT.wall_boxes(robot.cell_size)]
        parts = dict(
            wall_slots=locomotion_mjcf.WINDOW if self.windowed else 0,
            static_walls=static_walls,
            ball=self.ball,
            block=self.block,
            target=self.target,
        )
        # MJX's broad-phase cap: one that never drops a contact (mjcf.broad_phase_cap).
        uncapped = mujoco.MjModel.from_xml_string(locomotion_mjcf.build(robot, **parts))
        self.max_geom_pairs = locomotion_mjcf.broad_phase_cap(uncapped, robot.cell_size)
        sys = mjcf.loads(locomotion_mjcf.build(robot, **parts, max_geom_pairs=self.max_geom_pairs))
        self.sys, self.n_frames = configure_backend(sys, robot, backend, xml_timestep)
        self.pipeline = PIPELINES[backend]
        self.maximal = backend in MAXIMAL
        # Props, then the target, come after the robot in the MJCF, so the robot owns the
        # leading q/qd entries and the target (x, y slide joints) the last two.
        prop_q, prop_qd = (7, 6) if (self.ball or self.block) else (0, 0)
        target_q = 2 if self.target else 0
        self.robot_q = self.sys.q_size() - prop_q - target_q
        self.robot_qd = self.sys.qd_size() - prop_qd - target_q
        names = [self.sys.mj_model.geom(i).name for i in range(self.sys.ngeom)]
        slots = [f"wall_slot_{k}" for k in range(locomotion_mjcf.WINDOW)] if self.windowed else []
        self.slot_ids = np.array([names.index(n) for n in slots], np.int32)
        ctrl_range = np.asarray(self.sys.actuator.ctrl_range)
        self._ctrl_lo, self._ctrl_hi = ctrl_range[:, 0], ctrl_range[:, 1]

        self.action_size = self.sys.act_size()
        self.state_dim = robot.state_size(self.sys)
        if kind == "ball":
            self.goal_indices = (self.robot_q, self.robot_q + 1)  # the ball's x, y in q
        else:
            self.goal_indices = tuple(range(robot.goal_dims))  # torso x, y (, z) in q

    # -- walls -----------------------------------------------------------------------------

    def wall_window(self, task: TaskData, torso_xy: jax.Array) -> jax.Array:
        """(WINDOW, 3) positions of the wall slots: the walls of the 3 x 3 cells around
        the torso's cell, and the slots of open cells parked far below the floor."""
        c = self.robot.cell_size
        cell = jnp.floor(torso_xy / c + 0.5).astype(jnp.int32)
        cells = cell + _WINDOW_OFFSETS
        rows, cols = task.wall_grid.shape
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) & (cells[:, 1] < cols)
        wall = inside & task.wall_grid[jnp.clip(cells[:, 0], 0, rows - 1), jnp.clip(cells[:, 1], 0, cols - 1)]
        centre = jnp.concatenate(
            [cells.astype(jnp.float32) * c, jnp.full((len(cells), 1), locomotion_mjcf.wall_height(c) / 2)],
            axis=1,
        )
        park = jnp.asarray(locomotion_mjcf.park_position(c), jnp.float32)
        return jnp.where(wall[:, None], centre, park)

    def system_at(self, task: TaskData, torso_xy: jax.Array):
        """The Brax System with the wall slots placed around `torso_xy`."""
        if not self.windowed:
            return self.sys
        geom_pos = self.sys.geom_pos.at[self.slot_ids].set(self.wall_window(task, torso_xy))
        return self.sys.replace(geom_pos=geom_pos)

    def contacts(self, task: TaskData, physics) -> base.Contact:
        """The contacts that a step from `physics` resolves first: Brax's `contact.get` (MJX
        collision) on the System the step uses, at the state's link transforms. Entries with
        dist < 0 touch; pairs the broad phase culled are absent."""
        return contact.get(self.system_at(task, physics.q[:2]), physics.x)

    def with_system(self, sys) -> Scene:
        """This scene stepping `sys` (same bodies and q) instead, with no wall window: e.g.
        `LocomotionEnv.render_system()`, every wall in place and no broad-phase cap, as the
        reference the windowed, capped physics is checked against."""
        other = copy.copy(self)
        other.sys, other.windowed = sys, False
        return other

    # -- episodes --------------------------------------------------------------------------

    def sample_episode(self, task: TaskData, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(q, qd, goal) of a fresh episode: the start pose with noise and a new goal."""
        r = self.robot
        k_q, k_qd, k_goal, k_prop = jax.random.split(key, 4)
        q = jnp.asarray(self.sys.init_q, jnp.float32)
        q = q.at[: self.robot_q].add(_uniform(k_q, (self.robot_q,), -r.q_noise, r.q_noise))
        if task.pair_starts is None:
            q = q.at[:2].add(task.start_xy)
        else:  # stitching (the paper code's generalisation mazes): a pair; torso x, y exactly at its start
            k_goal, k_pair = jax.random.split(k_goal)
            pair = jax.random.choice(k_pair, task.pair_weights.shape[0], p=task.pair_weights)
            q = q.at[:2].set(task.pair_starts[pair])
        qd = jnp.zeros((self.sys.qd_size(),), jnp.float32)
        qd = qd.at[: self.robot_qd].set(r.qd_noise * jax.random.normal(k_qd, (self.robot_qd,)))

        if self.kind == "open" and r.goal_dims == 2:
            goal = task.start_xy + _on_circle(k_goal, OPEN_ANT_GOAL_DISTANCE)
        elif self.kind == "open":
            k_dist, k_dir = jax.random.split(k_goal)
            goal = task.start_xy + _on_circle(k_dir, _uniform(k_dist, (), *OPEN_HUMANOID_GOAL_DISTANCE))
        elif self.kind == "ball":
            k_dist, k_dir, k_goal_dist, k_goal_dir = jax.random.split(k_prop, 4)
            ball = task.start_xy + _on_circle(k_dir, _uniform(k_dist, (), *BALL_START_DISTANCE))
            q = q.at[self.robot_q : self.robot_q + 2].set(ball)
            goal = ball + _on_circle(k_goal_dir, _uniform(k_goal_dist, (), *BALL_GOAL_DISTANCE))
        else:  # maze, push: a goal cell's centre, uniformly (or the pair's), plus the optional jitter
            k_cell, k_offset = jax.random.split(k_goal)
            if task.pair_starts is None:
                centre = task.goal_cells[jax.random.randint(k_cell, (), 0, task.num_goals)]
            else:
                centre = task.pair_goals[pair]
            spread = task.goal_jitter * r.cell_size
            goal = centre + spread * _uniform(k_offset, (2,), -1.0, 1.0)
        if self.target is not None:  # the target body sits at the goal
            q = q.at[-2:].set(goal)
        if r.goal_dims == 3:
            goal = jnp.concatenate([goal, jnp.full((1,), r.goal_height, jnp.float32)])
        return q, qd, goal

    def _env_state(self, physics, goal: jax.Array, ctrl: jax.Array) -> EnvState:
        state = self.robot.state_fn(self.sys, physics, ctrl, self.maximal)
        metrics = goal_metrics(
            state[jnp.asarray(self.goal_indices)], goal, SUCCESS_RADIUS, SUCCESS_RADIUS_EASY
        )
        z = physics.q[2]
        lo, hi = self.robot.healthy_z
        done = ((z < lo) | (z > hi)).astype(jnp.float32)
        return _strong(EnvState(
            physics=physics,
            obs=jnp.concatenate([state, goal]),
            goal=goal,
            reward=metrics["success"],
            done=done,
            metrics=metrics,
        ))

    def init(self, task: TaskData, q: jax.Array, qd: jax.Array, goal: jax.Array) -> EnvState:
        """An EnvState for a given pose (used by reset and to place the robot in tests)."""
        physics = self.pipeline.init(self.system_at(task, q[:2]), q, qd)
        return self._env_state(physics, goal, jnp.zeros((self.action_size,), jnp.float32))

    def reset(self, task: TaskData, key: jax.Array) -> EnvState:
        q, qd, goal = self.sample_episode(task, key)
        return self.init(task, q, qd, goal)

    def step(self, task: TaskData, state: EnvState, action: jax.Array) -> EnvState:
        a = jnp.clip(action, -1.0, 1.0)
        ctrl = self._ctrl_lo + (a + 1.0) * 0.5 * (self._ctrl_hi - self._ctrl_lo)
        # The window is placed once per env step: a robot moves far less than a cell per
        # step (0.05 s for the ant, 0.015 s for the humanoid), so it stays valid.
        sys = self.system_at(task, state.physics.q[:2])

        def substep(physics, _):
            return self.pipeline.step(sys, physics, ctrl), None

        physics, _ = jax.lax.scan(substep, state.physics, None, length=self.n_frames)
        return self._env_state(physics, state.goal, ctrl).replace(info=state.info)

    @property
    def dt(self) -> float:
        return round(float(self.sys.opt.timestep) * self.n_frames, 9)  # float32 timestep


@functools.lru_cache(maxsize=None)
def get_scene(robot: str, kind: str, backend: str, target: bool = False,
              xml_timestep: bool = False) -> Scene:
    """Scenes are cached: envs with the same arguments share one Scene object."""
    return Scene(ROBOTS[robot], kind, backend, target, xml_timestep)
