"""Stitching tasks: start-goal pairs a fixed number of cells apart along a maze's corridor.

The paper's stitching test (its Fig. 6; its code's envs/ant_maze_generalization.py, facts in
shared PAPER_TASKS.md) trains on pairs of nearby cells and evaluates on far ones. A pair at
distance k is (path[i], path[i + k]) on the maze's forward path from R (`MazeLayout.
forward_path`): the episode starts in path[i] and its goal is path[i + k]'s centre. Each
distance of the set is equally likely; within a distance the pairs are uniform.

Both maze families take it as the declared parameters

    pair_distances       the training distances, e.g. [1, 2, 3]; empty: the maze's own
                         starts and goals (no pairs)
    eval_pair_distances  the evaluation distances; empty: every distance beyond the
                         largest training one that the corridor allows (the far pairs)

and an env with pairs evaluates on `env.evaluation_env()`. The paper code's ids
`<robot>_<maze>_gen_<k>f<k>f...` (e.g. `ant_u_maze_gen_1f2f3f`) are aliases: `resolve_id`
turns one into its maze id and `pair_distances`.
"""

from __future__ import annotations

import re

import numpy as np

from envs.maze_layouts import MazeLayout

KEY = "env.params.pair_distances"
EVAL_KEY = "env.params.eval_pair_distances"
STITCHING_MAZES = ("u_maze", "u2_maze", "u3_maze", "u4_maze", "u5_maze")
_GEN_ID = re.compile(r"^(?P<base>.+_maze)_gen_(?P<ks>(?:[1-9][0-9]*f)+)$")


def resolve_id(env_id: str, evaluation: bool = False) -> tuple[str, dict]:
    """(maze id, params) of a paper-code stitching id; (env_id, {}) for any other id.
    As an evaluation id, the alias's distances are the ones evaluated."""
    match = _GEN_ID.match(env_id)
    if match is None:
        return env_id, {}
    distances = [int(k) for k in match["ks"].split("f")[:-1]]
    params = {"pair_distances": distances}
    if evaluation:
        params["eval_pair_distances"] = distances
    return match["base"], params


def pair_table(maze: MazeLayout, distances, key: str = KEY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start cells (P, 2), goal cells (P, 2), weights (P,)) of every pair at `distances`;
    the weights sum to 1 with each distance's pairs sharing 1 / len(distances) equally.
    One-line ValueError naming `key` for a maze with no single corridor or a distance it
    cannot hold."""
    try:
        path = maze.forward_path()
    except ValueError as err:
        raise ValueError(f"{key}: not allowed on this maze; {err}; stitching mazes: "
                         f"{', '.join(STITCHING_MAZES)}") from None
    distances = sorted(set(int(k) for k in distances))
    too_far = [k for k in distances if k >= len(path)]
    if too_far:
        raise ValueError(f"{key}: {too_far[0]} is not allowed; the corridor of {maze.name} has "
                         f"{len(path)} cells, so use distances 1 to {len(path) - 1}")
    starts, goals, weights = [], [], []
    for k in distances:
        n = len(path) - k
        starts += path[:n]
        goals += path[k:]
        weights += [1.0 / len(distances) / n] * n
    return np.array(starts, np.int32), np.array(goals, np.int32), np.array(weights, np.float64)


def eval_distances(maze: MazeLayout, train, given) -> tuple[int, ...]:
    """The evaluation distances: `given`, else every distance beyond max(train) that the
    corridor holds."""
    if given:
        if not train:
            raise ValueError(f"{EVAL_KEY}: needs {KEY} (the training pairs) as well")
        pair_table(maze, given, EVAL_KEY)  # the distances fit the corridor
        return tuple(given)
    far = tuple(range(max(train) + 1, len(maze.forward_path())))
    if not far:
        raise ValueError(f"{KEY}: {list(train)} leaves no farther pair on {maze.name} to evaluate; "
                         f"set {EVAL_KEY}")
    return far
