import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.maze_layouts import layout
from envs.point_maze import ENV_IDS
from envs.wrappers import TrainingEnv


def test_registry_lists_point_envs_and_rejects_unknown_ids():
    assert set(ENV_IDS) <= set(envs.known_ids())
    with pytest.raises(KeyError, match=r"env.id: unknown env 'point_nowhere'; known: .*point_u_maze"):
        envs.make("point_nowhere")
    with pytest.raises(KeyError, match=r"env.params.speedd"):
        envs.make("point_u_maze", speedd=1.0)


@pytest.mark.parametrize("env_id", ["point_u_maze", "point_big_maze", "point_hardest_maze", "point_open", "point_u5_maze"])
def test_random_actions_never_enter_a_wall(env_id):
    env = envs.make(env_id)
    batched = TrainingEnv(env, episode_length=60)
    n = 32

    @jax.jit
    def rollout(key):
        state = batched.reset(key, n)

        def body(s, k):
            # Push hard and persistently: sticky random directions reach the walls quickly.
            s = batched.step(s, jnp.sign(jax.random.normal(k, (n, 2))))
            return s, (s.physics, s.obs)

        return jax.lax.scan(body, state, jax.random.split(key, 240))[1]

    positions, obs = rollout(jax.random.PRNGKey(0))
    positions = np.asarray(positions).reshape(-1, 2)
    assert obs.shape[-1] == env.obs_size == 4 and np.all(np.isfinite(np.asarray(obs)))
    for xy in positions[:: max(1, len(positions) // 3000)]:
        assert not env.disc_overlaps_wall(xy), xy
    # Also the exact check, vectorised: no position's cell is a wall cell.
    cells = np.floor(positions / env.params.cell_size + 0.5).astype(int)
    assert not env.maze.walls[cells[:, 0], cells[:, 1]].any()


def test_the_point_slides_along_a_wall_and_stops_flush():
    env = envs.make("point_u_maze")
    state = env.reset(jax.random.PRNGKey(0))
    state = env.set_position(state, jnp.array([1.0, 1.0]))
    for _ in range(10):  # push up-left into the corner walls at x = 0.5, y = 0.5
        state = env.step(state, jnp.array([-1.0, -1.0]))
    r = env.params.point_radius
    np.testing.assert_allclose(np.asarray(state.physics), [0.5 + r, 0.5 + r], atol=1e-3)
    for _ in range(4):  # now slide right along the top wall
        state = env.step(state, jnp.array([-1.0, 1.0]))
    assert float(state.physics[1]) > 1.4 and abs(float(state.physics[0]) - (0.5 + r)) < 1e-3


def test_success_is_one_on_the_goal_and_zero_far_away():
    env = envs.make("point_u_maze")
    state = env.reset(jax.random.PRNGKey(3))
    on_goal = env.set_position(state, state.goal)
    assert float(on_goal.metrics["success"]) == 1.0 and float(on_goal.metrics["dist"]) < 1e-6
    off = env.set_position(state, state.goal + jnp.array([1.0, 0.0]))
    assert float(off.metrics["success"]) == 0.0
    np.testing.assert_allclose(float(off.metrics["dist"]), 1.0, rtol=1e-5)
    near = env.set_position(state, state.goal + jnp.array([0.0, 0.7]))  # inside the easy radius only
    assert float(near.metrics["success"]) == 0.0 and float(near.metrics["success_easy"]) == 1.0
    # The goal coordinates are the state's goal indices: the obs' goal part equals state[goal_indices].
    np.testing.assert_allclose(on_goal.obs[: env.state_dim][jnp.array(env.goal_indices)], on_goal.obs[env.state_dim :])


@pytest.mark.parametrize("env_id", ["point_u_maze", "point_u_maze_eval", "point_big_maze_eval", "point_u4_maze_eval"])
def test_goals_and_starts_lie_in_free_cells(env_id):
    env = envs.make(env_id)
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 500))
    goal_cells = np.floor(np.asarray(states.goal) + 0.5).astype(int)
    allowed = {tuple(c) for c in env.maze.goal_cells}
    assert {tuple(c) for c in goal_cells} == allowed  # every candidate cell is drawn, nothing else
    start_cells = np.floor(np.asarray(states.physics) + 0.5).astype(int)
    assert {tuple(c) for c in start_cells} == {tuple(env.maze.start_cell)}


def test_start_cells_free_starts_episodes_in_every_free_cell():
    env = envs.make("point_u5_maze", start_cells="free")
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2000))
    start_cells = {tuple(c) for c in np.floor(np.asarray(states.physics) + 0.5).astype(int)}
    assert start_cells == {tuple(c) for c in env.maze.free_cells}  # every free cell, never a wall
    assert not any(env.disc_overlaps_wall(xy) for xy in np.asarray(states.physics))
    # the default draws exactly what it drew before the option existed: the same starts
    default = jax.vmap(envs.make("point_u5_maze").reset)(jax.random.split(jax.random.PRNGKey(0), 8))
    same = jax.vmap(envs.make("point_u5_maze", start_cells="start").reset)(jax.random.split(jax.random.PRNGKey(0), 8))
    np.testing.assert_array_equal(default.physics, same.physics)
    with pytest.raises(ValueError, match=r"^env.params.start_cells: 'any' is not allowed; use one of start, free$"):
        envs.make("point_u5_maze", start_cells="any")


def test_eval_params_override_the_training_params_for_the_eval_env_only():
    from helpers import tiny_config

    from crl.config import ConfigError, from_dict
    from crl.run import build_envs

    cfg = from_dict(tiny_config(env={"id": "point_u5_maze", "eval_id": "point_u5_maze_eval",
                           "params": {"start_cells": "free", "speed": 0.2}, "eval_params": {"start_cells": "start"}}))
    env, eval_env = build_envs(cfg)
    assert (env.params.start_cells, eval_env.params.start_cells) == ("free", "start")
    assert env.params.speed == eval_env.params.speed == 0.2  # the rest is shared
    env, eval_env = build_envs(from_dict(tiny_config(env={"id": "point_u5_maze", "eval_params": {"start_cells": "free"}})))
    assert (env.spec.env_id, eval_env.spec.env_id) == ("point_u5_maze", "point_u5_maze")
    assert (env.params.start_cells, eval_env.params.start_cells) == ("start", "free")
    with pytest.raises(ConfigError, match=r"^env.eval_params.start_cells: 'x' is not allowed; use one of start, free$"):
        build_envs(from_dict(tiny_config(env={"id": "point_u5_maze", "eval_params": {"start_cells": "x"}})))


def test_eval_layouts_keep_only_far_goals():
    assert {tuple(c) for c in layout("u_maze_eval").goal_cells} == {(3, 1), (3, 2), (3, 3)}
    train = {tuple(c) for c in layout("big_maze").goal_cells}
    assert {tuple(c) for c in layout("big_maze_eval").goal_cells} < train


def test_training_env_truncates_and_resets_with_new_goals():
    env = envs.make("point_open")
    batched = TrainingEnv(env, episode_length=5)
    s = batched.reset(jax.random.PRNGKey(0), 3)
    goals = [np.asarray(s.goal)]
    step = jax.jit(batched.step)
    for i in range(1, 11):
        s = step(s, jnp.zeros((3, 2)))
        if i % 5 == 0:
            assert np.all(np.asarray(s.done) == 1) and np.all(np.asarray(s.info["truncation"]) == 1)
            assert np.all(np.asarray(s.info["steps"]) == 0)
            goals.append(np.asarray(s.goal))
        else:
            assert np.all(np.asarray(s.done) == 0)
    assert not np.allclose(goals[0], goals[1]) and not np.allclose(goals[1], goals[2])


def test_env_params_are_checked_by_value_with_one_line():
    import dataclasses

    from envs.params import build, describe, param

    @dataclasses.dataclass(frozen=True)
    class Params:
        backend: str = param("spring", choices=("spring", "mjx"))
        frames: int = param(10, low=1)
        jitter: float = param(0.0, low=0.0, high=1.0, high_open=True)
        noise: bool = param(False)

    assert build(Params, "x", {"frames": 5.0, "jitter": 0}) == Params(frames=5, jitter=0.0)
    for values, message in [
        ({"backend": "brax"}, "env.params.backend: 'brax' is not allowed; use one of spring, mjx"),
        ({"frames": 0}, "env.params.frames: 0 is not allowed; use an integer >= 1"),
        ({"frames": 2.5}, "env.params.frames: 2.5 is not allowed; use an integer >= 1"),
        ({"jitter": 1.0}, "env.params.jitter: 1.0 is not allowed; use a number >= 0.0 and < 1.0"),
        ({"noise": 1}, "env.params.noise: 1 is not allowed; use true or false"),
    ]:
        with pytest.raises(ValueError) as err:
            build(Params, "x", values)
        assert str(err.value) == message
    with pytest.raises(KeyError, match="env.params.nope: not a parameter of x; allowed: backend, frames, jitter, noise"):
        build(Params, "x", {"nope": 1})
    assert [d["name"] for d in describe(Params)] == ["backend", "frames", "jitter", "noise"]
    with pytest.raises(ValueError, match=r"^env.params.speed: -0.5 is not allowed; use a number > 0.0$"):
        envs.make("point_u_maze", speed=-0.5)
