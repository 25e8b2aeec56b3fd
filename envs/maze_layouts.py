"""Maze layouts as data, shared by every robot that walks a maze (point, ant, humanoid).

Characters: `#` wall, `R` start, `G` goal candidate, `.` free. Cell (i, j) (row i,
column j) is centred at (i * cell_size, j * cell_size); a wall fills its whole cell.
The layouts are the benchmark's (see shared PAPER_FACTS.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

_LAYOUTS: dict[str, list[str]] = {
    "u_maze": ["#####", "#RGG#", "###G#", "#GGG#", "#####"],
    "u_maze_eval": ["#####", "#R..#", "###.#", "#GGG#", "#####"],
    # U2 and U3: the U maze with longer arms (the paper code's stitching mazes,
    # envs/ant_maze_generalization.py; shared PAPER_TASKS.md). Goals: every cell but R,
    # as the U maze; their `_eval` variants keep the far arm.
    "u2_maze": ["######", "#RGGG#", "####G#", "#GGGG#", "######"],
    "u2_maze_eval": ["######", "#R...#", "####.#", "#GGGG#", "######"],
    "u3_maze": ["#######", "#RGGGG#", "#####G#", "#GGGGG#", "#######"],
    "u3_maze_eval": ["#######", "#R....#", "#####.#", "#GGGGG#", "#######"],
    "big_maze": [
        "########", "#RG##GG#", "#GG#GGG#", "##GGG###",
        "#GG#GGG#", "#G#GG#G#", "#GGG#GG#", "########",
    ],
    "big_maze_eval": [
        "########", "#R.##GG#", "#..#.GG#", "##...###",
        "#..#...#", "#.#G.#G#", "#.GG#GG#", "########",
    ],
    "hardest_maze": [
        "############", "#RGGG#GGGGG#", "#G##G#G#G#G#", "#GGGGGG#GGG#", "#G####G###G#",
        "#GG#G#GGGGG#", "##G#G#G#G###", "#GG#GGG#GGG#", "############",
    ],
    "u4_maze": ["#####", "#GGG#", "#R#G#", "###G#", "#G#G#", "#GGG#", "#####"],
    "u5_maze": ["########", "#GGGGGG#", "#R####G#", "######G#", "#G####G#", "#GGGGGG#", "########"],
}


def _far_only(rows: list[str], far_cells: list[tuple[int, int]]) -> list[str]:
    """Keep `G` only at `far_cells`; other goal candidates become free cells."""
    out = [list(r.replace("G", ".")) for r in rows]
    for i, j in far_cells:
        assert rows[i][j] == "G", (i, j)
        out[i][j] = "G"
    return ["".join(r) for r in out]


# The hardest maze's eval goals are the training goals (the benchmark evaluates on them);
# the U4/U5 eval variants keep only the goal cells across the inner wall from R.
_LAYOUTS["hardest_maze_eval"] = list(_LAYOUTS["hardest_maze"])
_LAYOUTS["u4_maze_eval"] = _far_only(_LAYOUTS["u4_maze"], [(4, 1), (5, 1), (5, 2)])
_LAYOUTS["u5_maze_eval"] = _far_only(_LAYOUTS["u5_maze"], [(4, 1), (5, 1), (5, 2), (5, 3)])


# The paper's evaluation goal cells for the Brax robots (its envs/ant_maze.py and
# envs/humanoid_maze.py; shared PAPER_TASKS.md). They differ from the point mazes' far-only
# variants above, which stay as they are: U4 and U5 add cells on the far leg, and the ant's
# big maze leaves out (2, 5), which the humanoid's keeps. A maze missing here (the hardest
# maze) evaluates on its training goals.
_ROBOT_EVAL_GOALS: dict[str, dict[str, list[tuple[int, int]]]] = {
    "ant": {
        "u_maze": [(3, 1), (3, 2), (3, 3)],
        "u4_maze": [(4, 1), (5, 1), (5, 2), (5, 3)],
        "u5_maze": [(4, 1), (4, 6), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (5, 6)],
        "big_maze": [(1, 5), (1, 6), (2, 6), (5, 3), (5, 6), (6, 2), (6, 3), (6, 5), (6, 6)],
    },
    "humanoid": {
        "u_maze": [(3, 1), (3, 2), (3, 3)],
        "big_maze": [(1, 5), (1, 6), (2, 5), (2, 6), (5, 3), (5, 6), (6, 2), (6, 3), (6, 5), (6, 6)],
    },
}


@dataclasses.dataclass(frozen=True)
class MazeLayout:
    name: str
    rows: tuple[str, ...]

    @property
    def walls(self) -> np.ndarray:
        """Boolean (n_rows, n_cols) grid, True where a wall fills the cell."""
        return np.array([[c == "#" for c in r] for r in self.rows], dtype=bool)

    def cells(self, char: str) -> np.ndarray:
        return np.array(
            [(i, j) for i, r in enumerate(self.rows) for j, c in enumerate(r) if c == char],
            dtype=np.int32,
        ).reshape(-1, 2)

    @property
    def start_cell(self) -> np.ndarray:
        return self.cells("R")[0]

    @property
    def goal_cells(self) -> np.ndarray:
        return self.cells("G")

    @property
    def free_cells(self) -> np.ndarray:
        """Every cell that is not a wall (R, G and '.')."""
        return np.argwhere(~self.walls).astype(np.int32)

    def cell_distances(self, cell=None) -> np.ndarray:
        """Steps between 4-neighbour free cells from `cell` (default: the start) to every
        cell: the distance along the corridors. -1 in walls and in unreachable cells."""
        walls = self.walls
        start = tuple(int(c) for c in (self.start_cell if cell is None else cell))
        dist = np.full(walls.shape, -1, dtype=np.int32)
        dist[start] = 0
        frontier = [start]
        while frontier:
            nxt = []
            for i, j in frontier:
                for n in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                    inside = 0 <= n[0] < walls.shape[0] and 0 <= n[1] < walls.shape[1]
                    if inside and not walls[n] and dist[n] < 0:
                        dist[n] = dist[i, j] + 1
                        nxt.append(n)
            frontier = nxt
        return dist

    def forward_path(self) -> list[tuple[int, int]]:
        """The maze's one corridor, cell by cell, from R to its other end (the paper code's
        forward path of a stitching maze). ValueError where the free cells branch or where
        some free cell is off the corridor (the big and hardest mazes)."""
        walls = self.walls
        path = [tuple(int(c) for c in self.start_cell)]
        seen = set(path)
        while True:
            i, j = path[-1]
            nxt = [n for n in ((i, j + 1), (i + 1, j), (i, j - 1), (i - 1, j))
                   if 0 <= n[0] < walls.shape[0] and 0 <= n[1] < walls.shape[1] and not walls[n] and n not in seen]
            if len(nxt) > 1 or (len(nxt) == 0 and len(path) != int((~walls).sum())):
                raise ValueError(f"maze {self.name} is not one corridor from R (it branches at cell {path[-1]})")
            if not nxt:
                return path
            path.append(nxt[0])
            seen.add(nxt[0])

    def wall_boxes(self, cell_size: float) -> list[tuple[float, float, float]]:
        """(x, y, half_size) of each wall cell's box in world coordinates."""
        return [(i * cell_size, j * cell_size, cell_size / 2) for i, j in np.argwhere(self.walls)]


def layout(name: str) -> MazeLayout:
    if name not in _LAYOUTS:
        raise KeyError(f"maze layout: unknown name {name!r}; known: {', '.join(sorted(_LAYOUTS))}")
    rows = _LAYOUTS[name]
    assert len({len(r) for r in rows}) == 1, f"ragged layout {name}"
    return MazeLayout(name, tuple(rows))


def layout_names() -> list[str]:
    return sorted(_LAYOUTS)


def robot_layout(robot: str, name: str) -> MazeLayout:
    """The layout `name` as the paper gives it to `robot` ("ant", "humanoid"): an `_eval`
    name takes that robot's evaluation goal cells; every other name is `layout(name)`."""
    maze = name.removesuffix("_eval")
    cells = _ROBOT_EVAL_GOALS.get(robot, {}).get(maze)
    if maze == name or cells is None:
        return layout(name)
    return MazeLayout(f"{robot}_{name}", tuple(_far_only(_LAYOUTS[maze], cells)))
