"""Top-down numpy frames of a point maze (crl-render draws point mazes with these)."""

from __future__ import annotations

import numpy as np

from envs.colors import (
    FLOOR_COLOR,
    GOAL_COLOR,
    GOAL_RING_COLOR,
    OUTSIDE_COLOR,
    POINT_COLOR,
    TRAIL_COLOR,
    WALL_COLOR,
)


class PointMazePainter:
    """Top-down frames of a point maze; the layout reads as in its text (row i down)."""

    def __init__(self, env, width: int, height: int):
        self.env = env
        p = env.params
        self.cell = float(p.cell_size)
        self.radius = float(p.point_radius)
        self.success_radius = float(p.success_radius)
        walls = np.asarray(env.maze.walls)
        n_rows, n_cols = walls.shape
        self.scale = min(height / (n_rows * self.cell), width / (n_cols * self.cell))
        self.off_row = (height - n_rows * self.cell * self.scale) / 2
        self.off_col = (width - n_cols * self.cell * self.scale) / 2
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        # World coordinates of every pixel centre: x along image rows, y along columns.
        self.px = (rows - self.off_row) / self.scale - self.cell / 2
        self.py = (cols - self.off_col) / self.scale - self.cell / 2
        ci = np.floor(self.px / self.cell + 0.5).astype(int)
        cj = np.floor(self.py / self.cell + 0.5).astype(int)
        inside = (ci >= 0) & (ci < n_rows) & (cj >= 0) & (cj < n_cols)
        wall = np.zeros_like(inside)
        wall[inside] = walls[ci[inside], cj[inside]]
        self.background = np.empty((height, width, 3), np.uint8)
        self.background[:] = OUTSIDE_COLOR
        self.background[inside] = FLOOR_COLOR
        self.background[wall] = WALL_COLOR
        # Markers are at least a few pixels wide, so they survive video compression.
        self.marker_px = max(4.0, 0.15 * self.cell * self.scale)

    def _disc(self, centre, radius: float) -> np.ndarray:
        return (self.px - centre[0]) ** 2 + (self.py - centre[1]) ** 2 <= radius**2

    def episode(self, pose: dict, goal: np.ndarray):
        """Yield one frame per position (pose["q"]: (T, 2)) of one episode."""
        positions = pose["q"]
        base = self.background.copy()
        base[self._disc(goal, self.success_radius) & (base != WALL_COLOR).any(-1)] = GOAL_RING_COLOR
        base[self._disc(goal, self.marker_px / self.scale)] = GOAL_COLOR
        trail = np.zeros(base.shape[:2], bool)
        point_r = max(self.radius, 0.6 * self.marker_px / self.scale)
        for xy in positions:
            frame = base.copy()
            frame[trail] = TRAIL_COLOR
            frame[self._disc(xy, point_r)] = POINT_COLOR
            trail |= self._disc(xy, 0.35 * point_r)
            yield frame

    def close(self) -> None:
        pass
