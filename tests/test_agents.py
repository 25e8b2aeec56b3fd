"""The agents layer (issue 19): SAC, TD3 and GCSL beside CRL on the shared trainer.

Each agent learns on the default task above a random policy, resumes exactly after a
Ctrl-C inside an epoch, and is refused in one line for a setting it does not have. The
shared parts they rely on are checked directly: the env's goal-reaching reward, and the
buffer's goals (commanded, or a future state for HER's share) with their rewards and
next states.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import agents
from crl import buffer as replay
from crl.config import ConfigError, from_dict
from crl.evaluate import evaluate, random_policy
from crl.run import Interrupted, build_envs, load_params, run_training
from crl.train import Trainer
from helpers import crl_train, deterministic_columns, read_csv, tiny_config
from test_learning import CONFIG as LEARNING
from test_run_safety import PHASED, _interrupt_at_phase

AGENT_SETTINGS = {"sac+her": {"name": "sac", "her": True}, "td3+her": {"name": "td3", "her": True},
                  "gcsl": {"name": "gcsl"}}


# -- the shared parts ----------------------------------------------------------------------


def test_goal_reward_is_the_reward_the_env_reports():
    """GoalEnv.goal_reward(next state's goal coordinates, goal) equals EnvState.reward of
    every step: what the TD agents learn from is the env's own reward, defined once."""
    cfg = from_dict(tiny_config())
    env, _ = build_envs(cfg)
    idx = jnp.asarray(env.goal_indices)

    def rollout(key):
        def step(state, k):
            nxt = env.step(state, jax.random.uniform(k, (env.action_size,), minval=-1, maxval=1))
            achieved = nxt.obs[: env.state_dim][idx]
            return nxt, (nxt.reward, env.goal_reward(achieved, nxt.goal))

        k0, k1 = jax.random.split(key)
        # start at the goal half of the time so that both rewards occur
        state = env.reset(k0)
        return jax.lax.scan(step, state, jax.random.split(k1, 60))[1]

    reported, recomputed = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.PRNGKey(0), 64))
    np.testing.assert_array_equal(np.asarray(reported), np.asarray(recomputed))
    assert 0 < float(jnp.mean(reported)) < 1  # both outcomes were seen


def _episodes_buffer():
    """3 envs x 40 rows of episodes of length 10; state = (row, env, episode), goal = (100 + episode,)."""
    cap, n = 40, 3
    rows = jnp.arange(cap)[:, None] * jnp.ones((1, n))
    env = jnp.ones((cap, 1)) * jnp.arange(n)[None, :]
    episode = (rows // 10).astype(jnp.int32)
    states = jnp.stack([rows, env, episode.astype(jnp.float32)], -1)
    goals = (100.0 + episode.astype(jnp.float32))[..., None]
    buf = replay.init(cap, n, 3, 1, goal_dim=1)
    return replay.insert(buf, states, jnp.zeros((cap, n, 1)), episode, goals)


def test_batches_carry_the_goals_the_agent_asks_for_with_their_rewards():
    buf = _episodes_buffer()
    reward_fn = lambda achieved, goal: (achieved[:, 0] == goal[:, 0]).astype(jnp.float32)  # noqa: E731

    def sample(fraction, offsets):
        return jax.device_get(replay.sample(buf, jax.random.PRNGKey(0), 20_000, 0.9, (0,), 10,
                                            replay.Relabelling(fraction, offsets), reward_fn))

    commanded = sample(0.0, "uniform")
    assert not commanded.relabelled.any()
    np.testing.assert_array_equal(commanded.goal[:, 0], 100.0 + commanded.state[:, 2])  # the episode's own goal
    has_next = commanded.horizon > 0
    assert has_next.all()  # the uniform sampler always gives a step with a successor
    np.testing.assert_array_equal(commanded.next_state[:, 0], commanded.state[:, 0] + 1)
    np.testing.assert_array_equal(commanded.next_state[:, 2], commanded.state[:, 2])  # same episode
    assert not commanded.reward.any()  # a goal of 100+ is never reached by a row index below 40

    her = sample(0.8, "uniform")
    assert abs(her.relabelled.mean() - 0.8) < 0.01
    future = her.relabelled
    # a relabelled goal is the goal coordinate (row) of a later step of the same episode...
    offsets = her.goal[future, 0] - her.state[future, 0]
    np.testing.assert_array_equal(offsets, her.offset[future])
    assert (offsets >= 1).all() and (her.goal_episode_id[future] == her.episode_id[future]).all()
    # ... uniform over the steps left (HER's "future"): k = 1 is as likely as k = K
    k1 = np.mean(offsets == 1)
    kmax = np.mean(her.offset[future] == her.horizon[future])
    assert abs(k1 - kmax) < 0.02
    # the reward is recomputed for the relabelled goal: 1 exactly where the next state reaches it
    np.testing.assert_array_equal(her.reward[future], (her.offset[future] == 1).astype(np.float32))
    np.testing.assert_array_equal(her.goal[~future, 0], 100.0 + her.state[~future, 2])

    crl = sample(1.0, "geometric")  # CRL's batches: every goal a future state, P(k) ~ gamma^k
    assert crl.relabelled.all() and np.mean(crl.offset == 1) > 2 * np.mean(crl.offset == 5)


# -- settings --------------------------------------------------------------------------------


def test_agent_settings_are_checked_in_one_line():
    assert from_dict({"agent": {"name": "td3", "her": True}}).agent.her is True
    for bad, start in [
        ({"agent": {"name": "ppo"}}, "agent.name: 'ppo' is not allowed; use one of crl, sac, td3, gcsl, gcbc"),
        ({"agent": {"name": "crl", "her": True}}, "agent.her: not a setting of agent crl"),
        ({"agent": {"name": "gcsl", "tau": 0.1}}, "agent.tau: not a setting of agent gcsl"),
        ({"agent": {"name": "sac", "her_fraction": 0.0}}, "agent.her_fraction: 0.0 is not allowed"),
        ({"agent": {"name": "td3", "policy_delay": 0}}, "agent.policy_delay: 0 is not allowed"),
        ({"agent": {"name": "sac"}, "train": {"contrastive_loss": "symmetric"}},
         "train.contrastive_loss: 'symmetric' is not allowed; only agent crl uses it"),
    ]:
        with pytest.raises(ConfigError) as info:
            from_dict(bad)
        assert str(info.value).startswith(start) and "\n" not in str(info.value), str(info.value)


def test_crl_train_refuses_an_unknown_agent_or_setting_in_one_line(tmp_path):
    from crl.apps.overrides import compose_jobs
    from crl.apps.train import CONF_DIR

    for args, start in [
        (["agent=ppo"], "agent=ppo: no such agent config; choose one of crl, gcbc, gcsl, sac, sac_her, td3, td3_her"),
        (["agent.her=true"], "agent.her: not a setting of agent crl (in 'agent.her=true'); its settings: name"),
        (["agent=gcsl", "agent.tau=0.1"], "agent.tau: not a setting of agent gcsl"),
        (["-m", "agent=sac,crl", "agent.her=true"], "agent.her: not a setting of agent crl"),
        (["-m", "agent=sac,crl", "train.energy=dot"], "job 0 (agent=sac): train.energy: 'dot' is not allowed; only agent crl"),
    ]:
        multirun = args[0] == "-m"
        with pytest.raises(ConfigError) as info:
            compose_jobs(str(CONF_DIR), args[1:] if multirun else args, multirun)
        assert str(info.value).startswith(start) and "\n" not in str(info.value), str(info.value)
    # the command: exit 2, the line, nothing written
    result = crl_train("agent=gcsl", "agent.tau=0.1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and lines == [
        "crl-train: config error: agent.tau: not a setting of agent gcsl (in 'agent.tau=0.1'); its settings: name"
    ], result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_every_agent_has_the_interface_the_trainer_calls(tmp_path):
    cfg = from_dict(tiny_config())
    env, _ = build_envs(cfg)
    data = tmp_path / "data.npz"  # an offline-only agent's config needs a dataset that exists
    np.savez(data, observations=np.zeros((4, 2)), actions=np.zeros((4, 2)), terminals=np.array([0, 1, 0, 1]))
    for name in agents.AGENTS:
        dataset = {"dataset": str(data)} if agents.offline_only(name) else {}
        trainer = Trainer(from_dict({**tiny_config(train=dataset), "agent": {"name": name}}), env)
        params = jax.eval_shape(trainer.init_params, jax.random.PRNGKey(0))
        learner = jax.eval_shape(trainer.init_learner, jax.random.PRNGKey(0))
        assert "actor" in params and trainer.agent.name == name
        assert jax.tree.structure(jax.eval_shape(trainer.agent.params, learner)) == jax.tree.structure(params)
        s, g = jnp.zeros((5, env.state_dim)), jnp.zeros((5, env.goal_dim))
        a = jax.eval_shape(trainer.policy_deterministic, params["actor"], s, g)
        assert a.shape == (5, env.action_size)


# -- learning and resuming, per agent ---------------------------------------------------------


@pytest.mark.parametrize("agent", list(AGENT_SETTINGS))
def test_each_agent_learns_above_a_random_policy(agent, tmp_path):
    """CRL's learning test (tests/test_learning.py: same task, budget and seed) for the other
    agents: the trained deterministic policy beats the untrained one and a random policy."""
    cfg = from_dict({**LEARNING, "agent": AGENT_SETTINGS[agent], "logging": {"progress_bar": False,
                                                                            "tensorboard": False}})
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    key = jax.random.PRNGKey(123)
    before = float(trainer.evaluate(trainer.init(jax.random.PRNGKey(cfg.seed)).actor_params, key)["time_at_goal"])
    rand = float(jax.jit(lambda k: evaluate(eval_env, random_policy(env.action_size), None, k, 256, 100))(key)
                 ["time_at_goal"])
    row = run_training(cfg, tmp_path)
    after = row["eval/time_at_goal"]
    print(f"{agent}: time_at_goal untrained {before:.1f}, random {rand:.1f}, trained {after:.1f}")
    assert after > max(before, rand) + MARGIN[agent], (before, rand, after)
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["agent"] == AGENT_SETTINGS[agent]["name"]
    # params.msgpack holds the agent's layout and loads back into it
    params = load_params(tmp_path, trainer)
    assert set(params) == set(trainer.init_params(jax.random.PRNGKey(0)))


# measured (seeds 1 and 2, tests/test_learning.py's config): see docs/agents.md
MARGIN = {"sac+her": 8.0, "td3+her": 15.0, "gcsl": 15.0}


@pytest.mark.parametrize("agent", ["sac", "td3", "gcsl"])
def test_each_agent_resumes_exactly_after_ctrl_c_inside_an_epoch(agent, tmp_path, monkeypatch):
    settings = {"sac": {"name": "sac", "her": True}, "td3": {"name": "td3", "her": True}, "gcsl": {"name": "gcsl"}}
    # depth 0 (input layer and head): resuming does not depend on depth, and it compiles faster
    cfg = from_dict({**PHASED, "network": {**PHASED["network"], "depth": 0}, "agent": settings[agent]})
    run_training(cfg, tmp_path / "straight")
    reference = deterministic_columns(read_csv(tmp_path / "straight" / "metrics.csv"))
    _interrupt_at_phase(monkeypatch, 8)  # epoch 2, after its 3rd phase
    with pytest.raises(Interrupted):
        run_training(cfg, tmp_path / "cut")
    monkeypatch.undo()
    run_training(cfg, tmp_path / "cut")
    assert deterministic_columns(read_csv(tmp_path / "cut" / "metrics.csv")) == reference
    assert any(k.startswith("train/actor_loss") for k in reference[0])
    # the tools read the run as any other: crl-collect's agent column, crl-render's video
    from crl.apps.collect import collect_runs, load_run
    from crl.apps.render import render_run_video

    assert list(collect_runs(tmp_path / "straight").agent) == [agent + ("+her" if agent != "gcsl" else "")]
    cfg, _, params = load_run(tmp_path / "straight")
    assert cfg.agent == from_dict({"agent": settings[agent]}).agent
    video = render_run_video(tmp_path / "straight", cfg, params, episodes=1, out="videos/check.mp4", width=64,
                             height=64, steps=5)
    assert video["frames"] == 6


def test_the_non_finite_guard_sees_every_agents_parameters():
    """train_phase's finiteness flag (the guard's input) covers what the agent learns: GCSL
    has no critic, so a NaN actor alone must trip it."""
    cfg = from_dict({**tiny_config(), "agent": {"name": "gcsl"}})
    trainer = Trainer(cfg, build_envs(cfg)[0])
    ts = trainer.prefill(trainer.init(jax.random.PRNGKey(0)))
    ts, _, finite = trainer.train_phase(ts)
    assert bool(finite)
    actor = ts.learner["actor"]
    poisoned = ts.replace(learner={"actor": actor.replace(params=jax.tree.map(lambda x: x * jnp.nan, actor.params))})
    _, _, finite = trainer.train_phase(poisoned)
    assert not bool(finite)
