"""The paper's data pipeline as options: auto-reset to each slot's first start and goal,
the prefill with the untrained actor, both update orders, exact resume with every option
on, and a tiny end-to-end training with the paper's schedule and pipeline on `humanoid`
and `ant_u4_maze` (the schedule numbers are in test_config, window sampling in
test_buffer)."""

import json
import math
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from crl import buffer as replay
from crl.config import from_dict
from crl.run import build_envs, run_training
from crl.train import Trainer
from envs.base import EnvSpec, EnvState, GoalEnv, goal_metrics
from envs.wrappers import TrainingEnv
import helpers
from helpers import read_csv

PAPER_PIPELINE = {"sgd_schedule": "paper", "reset_mode": "first", "prefill_policy": "actor", "sampling": "window",
                  "update_order": "actor_first"}
# Tiny and valid under both schedules (the suite's tiny config, helpers.TINY_CONFIG, with
# 4 SGD steps of 16 per phase): 4 envs, 20-step episodes.
TINY_TRAIN = {**helpers.TINY_CONFIG["train"], "utd_ratio": 0.1}
END_TO_END = ["humanoid", "ant_u4_maze"]
TRAINING_TEST = "test_tiny_training_with_the_paper_pipeline_runs_end_to_end"


def tiny_config(env_id="point_u_maze", **train):
    return from_dict(helpers.tiny_config(env={"id": env_id}, train={**TINY_TRAIN, **train}))


# -- the end-to-end runs start first (subprocesses, mostly compiling) and overlap the rest ----


@pytest.fixture(scope="module", autouse=True)
def paper_trainings(request, tmp_path_factory):
    if not any(item.name.startswith(TRAINING_TEST) for item in request.session.items):
        yield {}
        return
    started = {}
    for env_id in END_TO_END:
        run_dir = tmp_path_factory.mktemp(f"paper_{env_id}") / "run"
        overrides = [f"env={env_id}", *helpers.as_overrides(helpers.tiny_config(train=TINY_TRAIN)),
                     f"hydra.run.dir={run_dir}"]
        log = run_dir.parent / "crl-train.log"  # a file, not a pipe: a full pipe would stall it
        with open(log, "w") as out:
            process = subprocess.Popen(helpers.crl_train_cmd(*overrides), cwd=run_dir.parent,
                                       env=helpers.crl_env(), stdout=out, stderr=subprocess.STDOUT)
        started[env_id] = (process, run_dir, log)
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


# -- auto-reset ---------------------------------------------------------------------------------


class Walker(GoalEnv):
    """A cheap 1-D goal env that terminates by itself: x += 0.4 a, done once |x| > 1."""

    spec = EnvSpec("walker", state_dim=1, goal_indices=(0,), action_size=1, episode_length=50,
                   success_radius=0.1, success_radius_easy=0.3)

    def reset(self, key):
        k_start, k_goal = jax.random.split(key)
        x = jax.random.uniform(k_start, (1,), minval=-0.5, maxval=0.5)
        goal = jax.random.uniform(k_goal, (1,), minval=-1.0, maxval=1.0)
        return EnvState(physics=x, obs=jnp.concatenate([x, goal]), goal=goal, reward=jnp.zeros(()),
                        done=jnp.zeros(()), metrics=goal_metrics(x, goal, 0.1, 0.3))

    def step(self, state, action):
        x = state.physics + 0.4 * action
        done = (jnp.abs(x[0]) > 1.0).astype(jnp.float32)
        return state.replace(physics=x, obs=jnp.concatenate([x, state.goal]), done=done,
                             metrics=goal_metrics(x, state.goal, 0.1, 0.3))


def _restarts(env, reset_mode, actions, episode_length):
    """Roll `actions` (steps, num_envs, action_size); return the first state and each step's state."""
    batched = TrainingEnv(env, episode_length=episode_length, reset_mode=reset_mode)
    first = batched.reset(jax.random.PRNGKey(3), actions.shape[1])
    step = jax.jit(batched.step)
    states, s = [], first
    for a in actions:
        s = step(s, a)
        states.append(jax.device_get(s))
    return jax.device_get(first), states


@pytest.mark.parametrize("env_id", ["point_u_maze", "walker"])
def test_first_reset_mode_returns_each_slot_to_its_first_start_and_goal(env_id):
    env = Walker() if env_id == "walker" else envs.make(env_id)
    num_envs, episode_length = 6, 7
    actions = jax.random.uniform(jax.random.PRNGKey(1), (30, num_envs, env.action_size), minval=-1, maxval=1)
    if env_id == "walker":
        actions = jnp.abs(actions)  # walk right: most slots terminate before the episode length
    first, states = _restarts(env, "first", actions, episode_length)
    restarts = 0
    for s in states:
        done = s.done > 0.5
        restarts += int(done.sum())
        np.testing.assert_array_equal(s.obs[done], first.obs[done])
        np.testing.assert_array_equal(s.goal[done], first.goal[done])
        for now, then in zip(jax.tree.leaves(s.physics), jax.tree.leaves(first.physics)):
            np.testing.assert_array_equal(now[done], then[done])
        np.testing.assert_array_equal(s.goal, first.goal)  # a slot's goal never changes
        assert np.all(s.info["steps"][done] == 0)
    assert restarts >= 2 * num_envs
    if env_id == "walker":  # terminations (not only truncations) restart from the first state too
        assert any(np.any((s.done > 0.5) & (s.info["truncation"] < 0.5)) for s in states)
    # ours: the same rollout with fresh resets draws new goals
    _, fresh = _restarts(env, "fresh", actions, episode_length)
    assert not np.allclose(fresh[-1].goal, first.goal)


def test_an_unknown_reset_mode_is_refused():
    with pytest.raises(ValueError, match=r"^reset_mode: 'sometimes' is not allowed; use one of fresh, first$"):
        TrainingEnv(Walker(), reset_mode="sometimes")


# -- prefill and update order ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["random", "actor"])
def test_prefill_policy_chooses_the_prefill_actions(policy):
    """The first prefill step's stored actions are exactly uniform noise or the untrained actor's sample."""
    cfg = tiny_config(prefill_policy=policy)
    env, _ = build_envs(cfg)
    trainer = Trainer(cfg, env)
    ts = trainer.init(jax.random.PRNGKey(0))
    obs, params, key = jax.device_get((ts.env_state.obs, ts.actor_params, ts.key))
    filled = trainer.prefill(ts)
    step_key = jax.random.split(jax.random.split(key)[1], cfg.train.unroll_length)[0]
    if policy == "random":
        expected = jax.random.uniform(step_key, (4, env.action_size), minval=-1.0, maxval=1.0)
    else:
        expected = trainer.policy_sample(params, obs[:, : env.state_dim], obs[:, env.state_dim :], step_key)
    np.testing.assert_allclose(np.asarray(filled.buffer.actions[0]), np.asarray(expected), rtol=1e-6, atol=1e-6)
    assert int(filled.buffer.size) == cfg.train.prefill_unrolls * cfg.train.unroll_length


@pytest.mark.parametrize("agent", ["crl", "sac", "td3"])
def test_update_order_decides_which_critic_the_actor_steps_against(agent):
    """actor_first: the actor's step ignores this step's critic update (the paper's order);
    critic_first: it follows it. The critic's own step is the same either way. Every agent
    with a critic honours train.update_order (the agent's update on its learner alone)."""
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    ids = jnp.zeros((16,), jnp.int32)
    batch = replay.Batch(state=jax.random.normal(k[0], (16, 2)), action=jax.random.uniform(k[1], (16, 2)),
                         goal=jax.random.normal(k[2], (16, 2)), offset=ids + 1, horizon=ids + 1, episode_id=ids,
                         goal_episode_id=ids, next_state=jax.random.normal(k[3], (16, 2)),
                         reward=(jnp.arange(16) % 3 == 0).astype(jnp.float32), relabelled=ids > 0)
    results = {}
    env = None
    for order in ("critic_first", "actor_first"):
        for critic_lr in (1e-4, 1e-1):
            # depth 0 (input layer and head): the order is the same at any depth, and it compiles about 3x faster
            cfg = from_dict({**helpers.tiny_config(env={"id": "point_u_maze"}, network={"depth": 0},
                                                   train={**TINY_TRAIN, "update_order": order, "critic_lr": critic_lr}),
                             "agent": {"name": agent}})
            env = env or build_envs(cfg)[0]
            trainer = Trainer(cfg, env)
            learner = trainer.init_learner(jax.random.PRNGKey(0))
            new, _ = jax.jit(trainer.agent.update)(learner, batch, jax.random.PRNGKey(2))
            results[order, critic_lr] = jax.device_get(new["actor"].params)
    flat = {k: np.concatenate([np.ravel(x) for x in jax.tree.leaves(v)]) for k, v in results.items()}
    np.testing.assert_array_equal(flat["actor_first", 1e-4], flat["actor_first", 1e-1])
    assert not np.allclose(flat["critic_first", 1e-4], flat["critic_first", 1e-1])


def test_paper_pipeline_records_its_schedule_and_resumes_exactly(tmp_path):
    """Every option on, on the point maze: run_info.json names the rule and its numbers, and
    recomputing the last epoch from the previous checkpoint reproduces it exactly."""
    cfg = tiny_config(**PAPER_PIPELINE, num_epochs=3, total_env_steps=600)
    run_training(cfg, tmp_path)
    info = json.loads((tmp_path / "run_info.json").read_text())
    # sgd = min(800, 4 x 19 // 16) = 4; phases = (600 - 20 x 4) // (3 x 4 x 10) = 4 per epoch
    assert {k: info[k] for k in PAPER_PIPELINE} == PAPER_PIPELINE
    # the stack the numbers came from
    assert info["versions"]["jax"] == jax.__version__ and info["versions"]["jaxlib"]
    assert {"flax", "optax", "brax", "mujoco", "mujoco-mjx"} <= {k for k, v in info["versions"].items() if v}
    assert (info["sgd_steps_per_training_step"], info["training_steps_per_epoch"], info["training_steps"]) == (4, 4, 12)
    first = read_csv(tmp_path / "metrics.csv")
    assert [int(r["sgd_steps"]) for r in first] == [16, 32, 48]
    (tmp_path / "checkpoints" / "epoch_000003").rename(tmp_path / "checkpoints" / ".partial_epoch_000003")
    run_training(cfg, tmp_path)
    again = read_csv(tmp_path / "metrics.csv")
    timing = {"wall_time", "train/env_steps_per_second", "train/sgd_steps_per_second"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in again] == [
        {k: v for k, v in r.items() if k not in timing} for r in first
    ]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", END_TO_END)
def test_tiny_training_with_the_paper_pipeline_runs_end_to_end(paper_trainings, env_id):
    """`crl-train env=<id>` takes the paper's schedule and pipeline from its conf/env file."""
    process, run_dir, log = paper_trainings[env_id]
    process.wait(timeout=1200)
    assert process.returncode == 0, log.read_text()[-3000:]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert {k: info[k] for k in PAPER_PIPELINE} == PAPER_PIPELINE
    # the stack the numbers came from
    assert info["versions"]["jax"] == jax.__version__ and info["versions"]["jaxlib"]
    assert {"flax", "optax", "brax", "mujoco", "mujoco-mjx"} <= {k for k, v in info["versions"].items() if v}
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["sgd_steps"]) for r in rows] == [16, 32]  # 4 phases of 4 SGD steps per epoch
    for row in rows:
        for name, value in row.items():
            assert math.isfinite(float(value)), (name, value)
