"""Arm manipulation tasks on MJX: interface, physical sanity, success, task sampling.

MJX compiles slowly on a CPU, so the tests share compiled programs: all six ids run the
same model and differ only in task data, so `rollout` (a jitted 100-step scan over a
batch of two envs) and `reset_batch` take the task as an argument and are traced and
compiled once, on one env rebound to each id's task with `env.with_task` (exactly what
`make(id)` returns, with the task traced instead of constant). Scripted motions reuse
the same program by feeding it precomputed actions; every reset draws RESETS envs and a
test keeps what it needs.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import registry
from envs.manipulation import ENV_IDS, GOAL_INDICES, make
from envs.manipulation_mjcf import BIN_INNER_HALF, CUBE_HALF
from envs.manipulation_physics import STATE_LAYOUT, arm_model
from envs.manipulation_tasks import BINS_ON_TABLE, REST_Z, SOURCE_BIN_OFFSET, TARGET_BIN_OFFSET

BATCH = 2
HORIZON = 100
RESETS = 512
BASE = make("arm_push_easy")  # the env every program is traced with
REPO = pathlib.Path(__file__).resolve().parents[1]
TRAINING_TEST = "test_tiny_crl_training_on_arm_push_easy"


def _trainer_available() -> bool:
    return importlib.util.find_spec("crl.apps.train") is not None


@pytest.fixture(scope="module", autouse=True)
def tiny_training(request, tmp_path_factory):
    """Start the end-to-end training (a subprocess, ~2 min, mostly compiling) as soon as
    this module starts, so it overlaps the other tests on a 2-core machine; the training
    test at the end of the file only waits for it."""
    if not (_trainer_available() and any(item.name == TRAINING_TEST for item in request.session.items)):
        yield None
        return
    run_dir = tmp_path_factory.mktemp("arm_training") / "run"
    overrides = [
        "env=arm_push_easy", "train.num_envs=4", "train.total_env_steps=400", "train.num_epochs=2",
        "train.unroll_length=10", "train.prefill_steps=20", "train.utd_ratio=0.25",
        "train.batch_size=16", "train.buffer_size=200", "train.num_eval_envs=4",
        "env.episode_length=20", "network.width=16", "logging.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "CRL_JAX_CACHE": os.environ.get("CRL_JAX_CACHE", str(REPO / ".jax_cache"))}
    log = run_dir.parent / "crl-train.log"  # a file: a pipe nobody reads could fill and stall it
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "crl.apps.train", *overrides],
                                   cwd=run_dir.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield process, run_dir, log
    if process.poll() is None:
        process.kill()
        process.wait()


@jax.jit
def rollout(task, state, actions):
    """Steps a batch through `actions` (HORIZON, BATCH, action_size) of the env with
    `task`; returns the final state and the per-step observations, metrics and dones."""
    env = BASE.with_task(task)

    def body(s, a):
        s = jax.vmap(env.step)(s, a)
        return s, (s.obs, s.metrics, s.done)

    return jax.lax.scan(body, state, actions)


@jax.jit
def reset_batch(task, keys):
    return jax.vmap(BASE.with_task(task).reset)(keys)


@jax.jit
def place_cube(task, state, xyz):
    """env.set_cube_pos over a batch (one compile for every id)."""
    return jax.vmap(BASE.with_task(task).set_cube_pos)(state, xyz)


@jax.jit
def place_goal(task, state, goal):
    """env.set_goal over a batch (one compile for every id)."""
    return jax.vmap(BASE.with_task(task).set_goal)(state, goal)


@functools.lru_cache(maxsize=None)
def _env(env_id):
    return make(env_id)


def _reset(env_id, seed=0, n=BATCH):
    states = reset_batch(_env(env_id).task, jax.random.split(jax.random.PRNGKey(seed), RESETS))
    return jax.tree.map(lambda x: x[:n], states)


def _roll(env_id, state, actions):
    return rollout(_env(env_id).task, state, actions)


def _repeat(action, steps=HORIZON):
    return jnp.broadcast_to(jnp.asarray(action, jnp.float32), (steps, BATCH, len(action)))


def _script(waypoints):
    """[(xyz, gripper, steps), ...] -> (HORIZON, BATCH, 4) actions from host-side IK."""
    env = _env("arm_push_easy")
    rows = []
    for xyz, gripper, steps in waypoints:
        rows += [env.tcp_action(xyz, gripper)] * steps
    assert len(rows) == HORIZON
    return jnp.broadcast_to(jnp.asarray(np.stack(rows))[:, None], (HORIZON, BATCH, 4))


def _cube(obs):
    return np.asarray(obs[..., STATE_LAYOUT["cube_pos"]])


def _opening(obs):
    return np.asarray(obs[..., STATE_LAYOUT["gripper_opening"]])[..., 0]


# -- interface ----------------------------------------------------------------------------


def test_ids_match_registry():
    assert ENV_IDS == sorted(registry.FAMILIES["envs.manipulation"])
    assert registry.family_of("arm_push_easy") == "envs.manipulation"


def test_make_rejects_unknown_params():
    with pytest.raises(KeyError, match=r"env\.params\.bogus.*allowed: .*episode_length"):
        make("arm_push_easy", bogus=1)
    with pytest.raises(KeyError, match="env.id"):
        make("arm_push_medium")
    with pytest.raises(ValueError, match=r"env\.params\.success_radius: -1"):
        make("arm_push_easy", success_radius=-1)
    assert make("arm_push_easy", episode_length=50).spec.episode_length == 50


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec(env_id):
    spec = registry.make(env_id).spec
    assert spec.episode_length == 1000
    assert spec.success_radius == 0.1 and spec.success_radius_easy == 0.3
    assert spec.action_size == 4
    expected = "tcp" if env_id == "arm_reach" else "cube"
    assert spec.goal_indices == GOAL_INDICES[expected]
    assert max(spec.goal_indices) < spec.state_dim


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_rollout_is_finite(env_id):
    env = _env(env_id)
    state = _reset(env_id)
    assert state.obs.shape == (BATCH, env.spec.obs_size)
    # The goal part of the observation is the goal, and it lives where state[goal_indices] does.
    np.testing.assert_allclose(state.obs[:, env.spec.state_dim :], state.goal)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (HORIZON, BATCH, 4), minval=-1.0, maxval=1.0)
    final, (obs, metrics, done) = _roll(env.spec.env_id, state, actions)
    assert obs.shape == (HORIZON, BATCH, env.spec.obs_size)
    assert np.isfinite(np.asarray(obs)).all()
    assert set(metrics) >= {"dist", "success", "success_easy", "success_hard"}
    assert np.isfinite(np.asarray(metrics["dist"])).all()
    assert np.all(np.asarray(done) == 0.0)  # nothing falls off in 5 s of random motion
    # Same dtypes and shapes after a step as after a reset: no recompiles on the next step.
    avals = lambda s: jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), s)  # noqa: E731
    assert avals(final) == avals(state)


# -- physics --------------------------------------------------------------------------------


def test_cube_rests_on_table_while_arm_holds_still():
    env = _env("arm_push_easy")
    state = _reset("arm_push_easy", seed=3)
    start = _cube(state.obs)
    hold = _repeat(env.tcp_action(arm_model().home_tcp, gripper=1.0))
    state, (obs1, _, _) = _roll(env.spec.env_id, state, hold)
    state, (obs2, _, _) = _roll(env.spec.env_id, state, hold)
    cube = np.concatenate([_cube(obs1), _cube(obs2)])  # 200 steps = 10 s
    assert np.abs(cube[..., :2] - start[..., :2]).max() < 0.01
    assert np.abs(cube[..., 2] - REST_Z).max() < 0.003  # no sinking, no hopping
    tcp = np.asarray(obs2[-1][:, STATE_LAYOUT["tcp_pos"]])
    np.testing.assert_allclose(tcp, np.broadcast_to(arm_model().home_tcp, tcp.shape), atol=0.01)


def test_gripper_opens_and_closes():
    env = _env("arm_push_easy")
    state = _reset("arm_push_easy")
    home = arm_model().home_tcp
    actions = _script([(home, -1.0, 50), (home, 1.0, 50)])
    _, (obs, _, _) = _roll(env.spec.env_id, state, actions)
    opening = _opening(obs)
    assert opening[49].max() < 0.005  # closed (no cube between the pads)
    assert opening[-1].min() > 0.075  # open: 8 cm


def test_scripted_sweep_pushes_cube():
    env = _env("arm_push_easy")
    state = _reset("arm_push_easy")
    state = place_cube(env.task, state, jnp.tile(jnp.array([0.55, 0.0, REST_Z]), (BATCH, 1)))
    actions = _script([((0.42, 0.0, 0.10), -1.0, 25), ((0.42, 0.0, 0.02), -1.0, 25), ((0.72, 0.0, 0.02), -1.0, 50)])
    _, (obs, _, _) = _roll(env.spec.env_id, state, actions)
    cube = _cube(obs)
    assert cube[-1, :, 0].min() > 0.62  # pushed at least 7 cm along +x
    assert np.abs(cube[-1, :, 1]).max() < 0.08  # a point push lets it slide aside a little
    assert np.abs(cube[..., 2] - REST_Z).max() < 0.03  # pushed (it may tip onto an edge), not flung


def test_scripted_grasp_lifts_cube():
    env = _env("arm_push_easy")
    state = _reset("arm_push_easy")
    state = place_cube(env.task, state, jnp.tile(jnp.array([0.55, 0.0, REST_Z]), (BATCH, 1)))
    actions = _script(
        [((0.55, 0.0, 0.12), 1.0, 20), ((0.55, 0.0, 0.015), 1.0, 20), ((0.55, 0.0, 0.015), -1.0, 10),
         ((0.55, 0.0, 0.2), -1.0, 50)]
    )
    _, (obs, _, _) = _roll(env.spec.env_id, state, actions)
    assert 0.035 < _opening(obs)[-1].min() < 0.041  # pads pinch the 4 cm cube
    assert _cube(obs)[-1, :, 2].min() > 0.15  # lifted with the hand


def test_scripted_binpick_carries_cube_over_the_wall():
    env = _env("arm_binpick_easy")
    source = np.array(BINS_ON_TABLE[:2]) + np.array(SOURCE_BIN_OFFSET)
    target = np.array(BINS_ON_TABLE[:2]) + np.array(TARGET_BIN_OFFSET)
    state = _reset("arm_binpick_easy")
    state = place_cube(env.task, state, jnp.tile(jnp.array([*source, REST_Z]), (BATCH, 1)))
    (sx, sy), (tx, ty) = source, target
    actions = _script(
        [((sx, sy, 0.15), 1.0, 15), ((sx, sy, 0.015), 1.0, 15), ((sx, sy, 0.015), -1.0, 10),
         ((sx, sy, 0.15), -1.0, 20), ((tx, ty, 0.15), -1.0, 20), ((tx, ty, 0.05), -1.0, 10), ((tx, ty, 0.05), 1.0, 10)]
    )
    _, (obs, _, _) = _roll("arm_binpick_easy", state, actions)
    cube = _cube(obs)
    assert cube[:, :, 2].max() > 0.12  # lifted over the 5 cm wall
    assert np.abs(cube[-1, :, :2] - target).max() < BIN_INNER_HALF - CUBE_HALF  # inside the target bin
    assert np.abs(cube[-1, :, 2] - REST_Z).max() < 0.005  # released onto its floor


# -- success --------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [i for i in ENV_IDS if i != "arm_reach"])
def test_success_when_cube_at_goal(env_id):
    env = _env(env_id)
    state = _reset(env_id, seed=7)
    at_goal = place_cube(env.task, state, state.goal)
    np.testing.assert_allclose(at_goal.metrics["dist"], 0.0, atol=1e-5)
    assert np.all(at_goal.metrics["success"] == 1.0) and np.all(at_goal.metrics["success_hard"] == 1.0)
    away = place_cube(env.task, state, state.goal + jnp.array([0.2, 0.0, 0.0]))
    np.testing.assert_allclose(away.metrics["dist"], 0.2, atol=1e-5)
    assert np.all(away.metrics["success"] == 0.0) and np.all(away.metrics["success_easy"] == 1.0)
    assert np.all(away.obs[:, :3] == away.goal + jnp.array([0.2, 0.0, 0.0]))


@pytest.mark.parametrize("env_id", ["arm_reach", "arm_push_easy"])
def test_success_when_goal_at_achieved(env_id):
    env = _env(env_id)
    state = _reset(env_id, seed=7)
    achieved = state.obs[:, np.array(env.spec.goal_indices)]
    hit = place_goal(env.task, state, achieved)
    assert np.all(hit.metrics["success"] == 1.0) and np.all(hit.metrics["success_hard"] == 1.0)
    offset = jnp.zeros(env.spec.goal_dim).at[0].set(0.2)
    miss = place_goal(env.task, state, achieved + offset)
    np.testing.assert_allclose(miss.metrics["dist"], 0.2, atol=1e-5)
    assert np.all(miss.metrics["success"] == 0.0)


# -- task sampling --------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["arm_binpick_easy", "arm_binpick_hard"])
def test_binpick_starts_in_source_and_goals_in_target(env_id):
    state = _reset(env_id, seed=11, n=RESETS)
    cube, goal = _cube(state.obs), np.asarray(state.goal)
    inner = BIN_INNER_HALF - CUBE_HALF  # the cube's centre must keep half a cube from the walls
    for points, offset in ((cube, SOURCE_BIN_OFFSET), (goal, TARGET_BIN_OFFSET)):
        centre = np.array(BINS_ON_TABLE[:2]) + np.array(offset)
        assert np.abs(points[:, :2] - centre).max() <= inner
        assert np.all(points[:, 2] >= REST_Z - 1e-6)  # above the bin floor (the table)
    assert np.unique(goal[:, 0]).size > 100  # goals really vary


def test_push_hard_spreads_wider_than_easy():
    easy, hard = _reset("arm_push_easy", seed=5, n=RESETS), _reset("arm_push_hard", seed=5, n=RESETS)
    spread = lambda points: np.ptp(np.asarray(points)[:, :2], axis=0)  # noqa: E731
    assert spread(_cube(hard.obs)).min() > 2 * spread(_cube(easy.obs)).max()
    assert np.prod(spread(hard.goal)) > 2 * np.prod(spread(easy.goal))


def test_grasp_goals_float_above_the_cube():
    state = _reset("arm_grasp", seed=13, n=RESETS)
    cube, goal = _cube(state.obs), np.asarray(state.goal)
    assert np.abs(goal[:, :2] - cube[:, :2]).max() <= 0.03 + 1e-6
    assert goal[:, 2].min() >= 0.13 - 1e-6 and goal[:, 2].max() <= 0.25 + 1e-6


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_no_episode_starts_solved(env_id):
    state = _reset(env_id, seed=17, n=RESETS)
    assert np.all(np.asarray(state.metrics["success"]) == 0.0)
    assert np.asarray(state.metrics["dist"]).min() > _env(env_id).spec.success_radius


@pytest.mark.parametrize("env_id", ["arm_reach", "arm_binpick_hard"])  # other goal index; bins
def test_own_env_matches_shared_program(env_id):
    """make(id) with its task as constants resets exactly like the shared traced program."""
    key = jax.random.PRNGKey(21)
    own = jax.jit(_env(env_id).reset)(key)
    shared = jax.tree.map(lambda x: x[0], reset_batch(_env(env_id).task, key[None]))
    np.testing.assert_allclose(own.obs, shared.obs, atol=1e-6)
    assert own.obs.shape == (_env(env_id).spec.obs_size,)


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not _trainer_available(), reason="the trainer (crl.apps.train) is not installed")
def test_tiny_crl_training_on_arm_push_easy(tiny_training):
    """`crl-train env=arm_push_easy` with a tiny config runs to the end (started by the
    module fixture) and logs finite metrics for both epochs."""
    process, run_dir, log = tiny_training
    process.wait(timeout=900)
    assert process.returncode == 0, log.read_text()[-3000:]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        for name, value in row.items():
            assert math.isfinite(float(value)), (name, value)
