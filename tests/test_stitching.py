"""Stitching tasks (envs/stitching.py): the paper code's start-goal pairs, checked against
its layouts and pair rule (shared PAPER_TASKS.md), on the point mazes and the ant."""

import collections

import jax
import numpy as np
import pytest

import envs
from crl.config import ConfigError, from_dict
from crl.run import build_envs
from envs.maze_layouts import layout
from envs.stitching import pair_table, resolve_id

# The oracle: the paper code's stitching layouts (envs/ant_maze_generalization.py), written
# out as text (R start, G the corridor's end), and its forward paths walked by hand.
PAPER_GEN_LAYOUTS = {
    "u_maze": ["#####", "#R..#", "###.#", "#G..#", "#####"],
    "u2_maze": ["######", "#R...#", "####.#", "#G...#", "######"],
    "u3_maze": ["#######", "#R....#", "#####.#", "#G....#", "#######"],
    "u4_maze": ["#####", "#...#", "#R#.#", "###.#", "#G#.#", "#...#", "#####"],
    "u5_maze": ["########", "#......#", "#R####.#", "######.#", "#G####.#", "#......#", "########"],
}
PAPER_PATHS = {
    "u_maze": [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)],
    "u2_maze": [(1, 1), (1, 2), (1, 3), (1, 4), (2, 4), (3, 4), (3, 3), (3, 2), (3, 1)],
    "u3_maze": [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 5), (3, 4), (3, 3), (3, 2), (3, 1)],
    "u4_maze": [(2, 1), (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 3), (5, 3), (5, 2), (5, 1), (4, 1)],
    "u5_maze": [(2, 1), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (2, 6), (3, 6), (4, 6), (5, 6),
                (5, 5), (5, 4), (5, 3), (5, 2), (5, 1), (4, 1)],
}


def _pairs(path, distances):
    return {(path[i], path[i + k]) for k in distances for i in range(len(path) - k)}


@pytest.mark.parametrize("maze", sorted(PAPER_GEN_LAYOUTS))
def test_forward_paths_and_pair_sets_are_the_paper_codes(maze):
    ours = layout(maze)
    paper = PAPER_GEN_LAYOUTS[maze]
    assert (ours.walls == np.array([[c == "#" for c in r] for r in paper])).all()  # same walls
    path = ours.forward_path()
    assert path == PAPER_PATHS[maze]
    assert path[-1] == next((i, j) for i, r in enumerate(paper) for j, c in enumerate(r) if c == "G")
    for distances in ([1], [1, 2, 3], [2, 5]):
        starts, goals, weights = pair_table(ours, distances)
        assert {(tuple(s), tuple(g)) for s, g in zip(starts, goals)} == _pairs(path, distances)
        # each distance is equally likely, its pairs uniform (the paper code's weights, normalised)
        lengths = np.abs(np.array([PAPER_PATHS[maze].index(tuple(g)) - PAPER_PATHS[maze].index(tuple(s))
                                   for s, g in zip(starts, goals)]))
        for k in distances:
            share = weights[lengths == k]
            np.testing.assert_allclose(share.sum(), 1 / len(distances), rtol=1e-12)
            np.testing.assert_allclose(share, share[0])


def _cells(xy):
    return [tuple(c) for c in np.floor(np.asarray(xy) / 1.0 + 0.5).astype(int)]


def test_point_maze_resets_draw_exactly_the_pairs_with_equal_weight_per_distance():
    env = envs.make("point_u4_maze", pair_distances=[1, 2, 3])
    n = 6000
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), n))
    drawn = list(zip(_cells(states.physics), _cells(states.goal)))
    path = PAPER_PATHS["u4_maze"]
    assert set(drawn) == _pairs(path, [1, 2, 3])  # every pair drawn, nothing else
    distance = collections.Counter(path.index(g) - path.index(s) for s, g in drawn)
    for k in (1, 2, 3):  # 1/3 each: 3 standard deviations of a binomial share is 0.018
        assert abs(distance[k] / n - 1 / 3) < 0.02, distance
    # the eval env draws the far pairs: every distance from 4 to the corridor's 10
    far = env.evaluation_env()
    assert far.params.pair_distances == tuple(range(4, 11)) and far.evaluation_env() is far
    states = jax.jit(jax.vmap(far.reset))(jax.random.split(jax.random.PRNGKey(1), 4000))
    drawn = set(zip(_cells(states.physics), _cells(states.goal)))
    assert drawn == _pairs(path, range(4, 11))


def test_the_ant_starts_exactly_at_the_pair_start_and_evaluates_on_the_far_pairs():
    env = envs.make("ant_u4_maze", pair_distances=[1, 2])
    sample = jax.jit(jax.vmap(env.sample_episode))
    q, _, goal = sample(jax.random.split(jax.random.PRNGKey(0), 3000))
    path = PAPER_PATHS["u4_maze"]
    cell = 4.0
    starts, goals = np.asarray(q[:, :2]) / cell, np.asarray(goal) / cell
    # the paper code sets the torso's x, y to the cell centre (no noise) and the goal to a centre
    np.testing.assert_array_equal(starts, np.round(starts))
    np.testing.assert_array_equal(goals, np.round(goals))
    drawn = {(tuple(s), tuple(g)) for s, g in zip(np.round(starts).astype(int), np.round(goals).astype(int))}
    assert drawn == _pairs(path, [1, 2])
    assert np.asarray(q[:, 2:]).std(axis=0).min() > 0  # the rest of q keeps its reset noise
    far = env.evaluation_env()
    assert np.asarray(far.task.pair_weights).size == sum(len(path) - k for k in range(3, 11))
    assert far.evaluation_env() is far


def test_paper_ids_are_aliases_and_evaluate_their_own_distances():
    assert resolve_id("ant_u_maze_gen_1f2f3f") == ("ant_u_maze", {"pair_distances": [1, 2, 3]})
    assert resolve_id("ant_u_maze_gen_4f5f", evaluation=True)[1] == {"pair_distances": [4, 5],
                                                                    "eval_pair_distances": [4, 5]}
    assert resolve_id("ant_u_maze") == ("ant_u_maze", {})
    assert envs.make("point_u_maze_gen_1f2f").params.pair_distances == (1, 2)
    # a training alias with the maze's eval id: the eval env still draws the far pairs
    env, eval_env = build_envs(from_dict({"env": {"id": "point_u_maze_gen_1f2f", "eval_id": "point_u_maze_eval"}}))
    assert env.params.pair_distances == (1, 2) and eval_env.params.pair_distances == (3, 4, 5, 6)
    # an alias as the eval id names the distances evaluated (the paper's --eval_env_id)
    _, eval_env = build_envs(from_dict({"env": {"id": "point_u_maze_gen_1f", "eval_id": "point_u_maze_gen_5f6f"}}))
    assert eval_env.params.pair_distances == (5, 6)
    # env.params as the command line sets them, with eval_params
    env, eval_env = build_envs(from_dict({"env": {"id": "point_u3_maze", "params": {"pair_distances": [1, 2, 3]},
                                                  "eval_params": {"eval_pair_distances": [9, 10]}}}))
    assert env.params.pair_distances == (1, 2, 3) and eval_env.params.pair_distances == (9, 10)


@pytest.mark.parametrize("env, message", [
    ({"id": "point_big_maze", "params": {"pair_distances": [1]}},
     "env.params.pair_distances: not allowed on this maze; maze big_maze is not one corridor from R"),
    ({"id": "point_u_maze", "params": {"pair_distances": [7]}},
     "env.params.pair_distances: 7 is not allowed; the corridor of u_maze has 7 cells, so use distances 1 to 6"),
    ({"id": "point_u_maze", "params": {"pair_distances": [0, 1]}},
     "env.params.pair_distances: [0, 1] is not allowed; use a list of integers >= 1"),
    ({"id": "point_u_maze", "params": {"pair_distances": [1, 6]}},
     "env.params.pair_distances: [1, 6] leaves no farther pair on u_maze to evaluate; set env.params.eval_pair_distances"),
    ({"id": "point_u_maze", "params": {"eval_pair_distances": [3]}},
     "env.params.eval_pair_distances: needs env.params.pair_distances"),
    ({"id": "point_u_maze", "params": {"pair_distances": [1], "start_cells": "free"}},
     "env.params.start_cells: free is not allowed with env.params.pair_distances"),
    ({"id": "point_u_maze_gen_1f", "params": {"pair_distances": [2]}},
     "env.params.pair_distances: not allowed with env.id 'point_u_maze_gen_1f', whose name sets it"),
    ({"id": "point_u_maze", "params": {"pair_distances": [1]}, "eval_params": {"eval_pair_distances": [9]}},
     "env.eval_params.eval_pair_distances: 9 is not allowed; the corridor of u_maze has 7 cells"),
])
def test_bad_pair_settings_are_one_line_config_errors(env, message):
    with pytest.raises(ConfigError) as err:
        build_envs(from_dict({"env": env}))
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text, text


def test_the_cpu_stitching_preset_trains_on_near_pairs_and_scores_the_far_ones():
    from test_experiments import _validate

    for actor, critic in ((16, 4), (4, 16)):
        cfg = _validate(["+experiment=stitching_cpu", f"network.actor_depth={actor}", f"network.critic_depth={critic}"])
        assert (cfg.network.actor_depth, cfg.network.critic_depth) == (actor, critic)
        env, eval_env = build_envs(cfg)
        near = env.params.pair_distances
        assert near and eval_env.params.pair_distances == tuple(range(max(near) + 1, len(env.maze.forward_path())))
