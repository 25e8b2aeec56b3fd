"""The point-maze family: a pure-JAX point mass in the mazes of envs/maze_layouts.py.

    point_open, point_{u,u2,u3,u4,u5,big,hardest}_maze and their `_eval` variants (far goals only)

The U mazes also take stitching pairs (`pair_distances`, envs/stitching.py).

Parameters: `PointMazeParams` (envs/point_maze/env.py), each with its allowed values.
"""

from __future__ import annotations

from envs.maze_layouts import MazeLayout, layout
from envs.params import build
from envs.point_maze.env import PointMaze, PointMazeParams

__all__ = ["ENV_IDS", "PointMaze", "PointMazeParams", "make"]


# An open 5 x 5 arena: start in the centre, goals anywhere.
_OPEN_ARENA = MazeLayout("open", ("#######", "#GGGGG#", "#GGGGG#", "#GGRGG#", "#GGGGG#", "#GGGGG#", "#######"))

POINT_MAZES = {
    "point_open": None,
    "point_u_maze": "u_maze",
    "point_u2_maze": "u2_maze",
    "point_u3_maze": "u3_maze",
    "point_big_maze": "big_maze",
    "point_hardest_maze": "hardest_maze",
    "point_u4_maze": "u4_maze",
    "point_u5_maze": "u5_maze",
}
ENV_IDS = sorted(
    list(POINT_MAZES) + [f"{k}_eval" for k, v in POINT_MAZES.items() if v is not None]
)


def make(env_id: str, **kwargs) -> PointMaze:
    base = env_id[: -len("_eval")] if env_id.endswith("_eval") else env_id
    if base not in POINT_MAZES or (base == "point_open" and base != env_id):
        raise KeyError(f"env.id: unknown point env {env_id!r}; known: {', '.join(ENV_IDS)}")
    maze = _OPEN_ARENA if base == "point_open" else layout(POINT_MAZES[base] + ("_eval" if base != env_id else ""))
    return PointMaze(env_id, maze, build(PointMazeParams, env_id, kwargs))
