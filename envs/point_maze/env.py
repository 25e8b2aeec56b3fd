"""A pure-JAX point mass in a 2-D maze: the embedded default task, fast on a CPU.

The point moves by `speed * clip(action, -1, 1)` per step (kinematic, no inertia).
Walls are the layout's cells of size `cell_size`; the point is a disc of radius
`point_radius`. A move is applied one axis at a time and an axis whose move would put
the disc into a wall is stopped flush against that wall, so the point slides along
walls and can never enter one (a step is shorter than a cell, so nothing tunnels).

State = (x, y); goal = (x, y) of a goal point; obs = (x, y, goal_x, goal_y).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from envs.base import Drawable, EnvSpec, EnvState, GoalEnv, goal_metrics
from envs.maze_layouts import MazeLayout
from envs.params import param
from envs.point_maze.draw import PointMazePainter
from envs.stitching import eval_distances, pair_table


@dataclasses.dataclass(frozen=True)
class PointMazeParams:
    """`env.params.*` of the point mazes (checked by envs.params.build)."""

    cell_size: float = param(1.0, low=0.0, low_open=True, doc="side of a maze cell")
    speed: float = param(0.25, low=0.0, low_open=True, doc="distance per step at |action| = 1 (< cell_size - 2 point_radius)")
    point_radius: float = param(0.1, low=0.0, doc="radius of the point's disc")
    start_cells: str = param("start", choices=("start", "free"), doc="start: the layout's R cell; free: any free cell, drawn per episode")
    start_noise: float = param(0.1, low=0.0, doc="uniform +- around the start cell's centre")
    goal_noise: float = param(0.25, low=0.0, doc="uniform +- around the goal cell's centre")
    success_radius: float = param(0.5, low=0.0, low_open=True, doc="time at goal counts inside it")
    success_radius_easy: float = param(1.0, low=0.0, low_open=True, doc="the easy success metric's radius")
    episode_length: int = param(100, low=2, key="env.episode_length", doc="steps per episode")
    pair_distances: tuple[int, ...] = param((), low=1, doc="stitching: start-goal pairs this many corridor cells apart (envs/stitching.py); empty: the layout's starts and goals")
    eval_pair_distances: tuple[int, ...] = param((), low=1, doc="stitching: the pairs the eval env draws; empty: every distance beyond the training ones")


class PointMaze(GoalEnv, Drawable):
    def __init__(self, env_id: str, maze: MazeLayout, params: PointMazeParams):
        if params.speed >= params.cell_size - 2 * params.point_radius:
            raise ValueError(
                f"env.params.speed: {params.speed} is not allowed; use less than cell_size - 2 * point_radius "
                f"({params.cell_size - 2 * params.point_radius}) or the point could tunnel"
            )
        self.maze = maze
        self.params = params
        self.spec = EnvSpec(
            env_id=env_id,
            state_dim=2,
            goal_indices=(0, 1),
            action_size=2,
            episode_length=params.episode_length,
            success_radius=params.success_radius,
            success_radius_easy=params.success_radius_easy,
        )
        self._walls = jnp.asarray(maze.walls)
        starts = maze.start_cell[None] if params.start_cells == "start" else maze.free_cells
        self._starts = jnp.asarray(starts, jnp.float32) * params.cell_size
        self._goals = jnp.asarray(maze.goal_cells, jnp.float32) * params.cell_size
        self._pairs = None
        if params.pair_distances:
            if params.start_cells != "start":
                raise ValueError("env.params.start_cells: free is not allowed with env.params.pair_distances "
                                 "(each pair gives the start); use start")
            starts, goals, weights = pair_table(maze, params.pair_distances)
            c = params.cell_size
            self._pairs = (jnp.asarray(starts * c, jnp.float32), jnp.asarray(goals * c, jnp.float32),
                           jnp.asarray(weights, jnp.float32))
        self._eval_distances = eval_distances(maze, params.pair_distances, params.eval_pair_distances) \
            if params.pair_distances or params.eval_pair_distances else ()

    # -- geometry -------------------------------------------------------------------------

    def _cell_of(self, xy: jax.Array) -> jax.Array:
        return jnp.floor(xy / self.params.cell_size + 0.5).astype(jnp.int32)

    def _is_wall(self, cell: jax.Array) -> jax.Array:
        n_rows, n_cols = self._walls.shape
        inside = (cell[0] >= 0) & (cell[0] < n_rows) & (cell[1] >= 0) & (cell[1] < n_cols)
        i = jnp.clip(cell[0], 0, n_rows - 1)
        j = jnp.clip(cell[1], 0, n_cols - 1)
        return jnp.where(inside, self._walls[i, j], True)

    def _move_axis(self, xy: jax.Array, delta: jax.Array, axis: int) -> jax.Array:
        """Move along one axis; stop flush against a wall cell if the disc would enter it."""
        c, r = self.params.cell_size, self.params.point_radius
        target = xy[axis] + delta
        leading = target + jnp.sign(delta) * r  # the disc's edge in the direction of motion
        lead_cell = jnp.floor(leading / c + 0.5).astype(jnp.int32)
        # The disc spans [other - r, other + r] on the other axis: check both cells it touches.
        other = 1 - axis
        lo = jnp.floor((xy[other] - r + 1e-6) / c + 0.5).astype(jnp.int32)
        hi = jnp.floor((xy[other] + r - 1e-6) / c + 0.5).astype(jnp.int32)

        def cell(a, b):
            return jnp.stack([a, b]) if axis == 0 else jnp.stack([b, a])

        blocked = self._is_wall(cell(lead_cell, lo)) | self._is_wall(cell(lead_cell, hi))
        # Face of the blocking cell nearest to us, minus the radius (and a hair of slack).
        face = (lead_cell - 0.5 * jnp.sign(delta)) * c
        stopped = face - jnp.sign(delta) * (r + 1e-4)
        new = jnp.where(blocked, stopped, target)
        return xy.at[axis].set(new)

    # -- GoalEnv --------------------------------------------------------------------------

    def _obs(self, xy: jax.Array, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([xy, goal])

    def _metrics(self, xy: jax.Array, goal: jax.Array) -> dict:
        p = self.params
        return goal_metrics(xy, goal, p.success_radius, p.success_radius_easy)

    def evaluation_env(self) -> PointMaze:
        d = self._eval_distances
        if not d or d == self.params.pair_distances:  # (an eval env is its own eval env)
            return self
        return PointMaze(self.spec.env_id, self.maze,
                         dataclasses.replace(self.params, pair_distances=d, eval_pair_distances=d))

    def reset(self, key: jax.Array) -> EnvState:
        p = self.params
        k_start, k_cell, k_goal = jax.random.split(key, 3)
        start = self._starts[0]
        if self._pairs is not None:  # stitching: a start-goal pair along the corridor
            starts, goals, weights = self._pairs
            idx = jax.random.choice(k_cell, weights.shape[0], p=weights)
            start = starts[idx] + jax.random.uniform(k_start, (2,), minval=-p.start_noise, maxval=p.start_noise)
            goal = goals[idx] + jax.random.uniform(k_goal, (2,), minval=-p.goal_noise, maxval=p.goal_noise)
            return self._first_state(start, goal)
        if p.start_cells == "free":  # ("start" draws no extra numbers: the same starts as before)
            k_start, k_start_cell = jax.random.split(k_start)
            start = self._starts[jax.random.randint(k_start_cell, (), 0, self._starts.shape[0])]
        start = start + jax.random.uniform(k_start, (2,), minval=-p.start_noise, maxval=p.start_noise)
        idx = jax.random.randint(k_cell, (), 0, self._goals.shape[0])
        goal = self._goals[idx] + jax.random.uniform(k_goal, (2,), minval=-p.goal_noise, maxval=p.goal_noise)
        return self._first_state(start, goal)

    def _first_state(self, start: jax.Array, goal: jax.Array) -> EnvState:
        metrics = self._metrics(start, goal)
        return EnvState(
            physics=start,
            obs=self._obs(start, goal),
            goal=goal,
            reward=metrics["success"],
            done=jnp.zeros((), jnp.float32),
            metrics=metrics,
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        delta = self.params.speed * jnp.clip(action, -1.0, 1.0)
        xy = self._move_axis(state.physics, delta[0], 0)
        xy = self._move_axis(xy, delta[1], 1)
        metrics = self._metrics(xy, state.goal)
        return state.replace(
            physics=xy,
            obs=self._obs(xy, state.goal),
            reward=metrics["success"],
            done=jnp.zeros((), jnp.float32),
            metrics=metrics,
        )

    def set_position(self, state: EnvState, xy: jax.Array) -> EnvState:
        """Place the point (for tests and value maps); keeps the goal."""
        metrics = self._metrics(xy, state.goal)
        return state.replace(physics=xy, obs=self._obs(xy, state.goal), reward=metrics["success"], metrics=metrics)

    # -- drawing ------------------------------------------------------------------------------

    def pose(self, physics) -> dict:
        return {"q": physics}  # the point's (x, y)

    def painter(self, width: int, height: int, camera: str | None = None):
        return PointMazePainter(self, width, height)

    def disc_overlaps_wall(self, xy: np.ndarray) -> bool:
        """Host-side check used by tests: does the disc at xy overlap any wall cell?"""
        c, r = self.params.cell_size, self.params.point_radius
        walls = self.maze.walls
        for i, j in np.argwhere(walls):
            nearest = np.clip(xy, [i * c - c / 2, j * c - c / 2], [i * c + c / 2, j * c + c / 2])
            if np.linalg.norm(xy - nearest) < r - 1e-5:
                return True
        return False
