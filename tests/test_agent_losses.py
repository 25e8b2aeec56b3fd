"""The TD agents' and GCSL's definitions (docs/agents.md), checked on hand-made numbers:
SAC's soft TD target and masked twin loss, TD3's smoothing noise, delayed actor and target
updates, Polyak averaging, GCSL's likelihood. No env is stepped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import buffer as replay
from crl.agents.common import polyak
from crl.agents.gcsl import losses as gcsl_losses
from crl.agents.sac import losses as sac_losses
from crl.agents.td3 import losses as td3_losses


def test_sac_target_is_the_soft_value_of_the_smaller_target_twin():
    reward = jnp.array([1.0, 0.0])
    next_q = jnp.array([[3.0, -1.0], [2.0, 4.0]])  # (twins, batch)
    log_prob = jnp.array([-1.0, 0.5])
    y = sac_losses.td_target(reward, next_q, log_prob, alpha=0.2, discount=0.9, reward_scale=2.0)
    np.testing.assert_allclose(y, [2.0 + 0.9 * (2.0 + 0.2), 0.0 + 0.9 * (-1.0 - 0.1)], rtol=1e-6)


def test_twin_losses_leave_out_samples_without_a_next_state():
    q = jnp.array([[1.0, 5.0, 2.0], [0.0, 5.0, 4.0]])
    target = jnp.array([0.0, 100.0, 2.0])
    mask = jnp.array([1.0, 0.0, 1.0])  # the middle sample has no next state
    # SAC: each twin's half mean squared error over the kept samples, summed over twins
    np.testing.assert_allclose(sac_losses.critic_loss(q, target, mask), 0.5 * (1 + 0) / 2 + 0.5 * (0 + 4) / 2)
    # TD3: each twin's mean squared error, summed
    np.testing.assert_allclose(td3_losses.critic_loss(q, target, mask), (1 + 0) / 2 + (0 + 4) / 2)


def test_td3_smoothing_noise_is_clipped_and_the_action_stays_in_bounds():
    action = jnp.full((20_000, 2), 0.9)
    smoothed = td3_losses.smoothed_action(action, jax.random.PRNGKey(0), policy_noise=1.0, noise_clip=0.5)
    noise = np.asarray(smoothed - action)
    assert noise.min() >= -0.5 - 1e-6 and float(smoothed.max()) <= 1.0
    assert np.mean(np.isclose(np.asarray(smoothed), 1.0)) > 0.3  # 0.9 + noise > 1 is clipped to the bound
    np.testing.assert_allclose(td3_losses.td_target(jnp.array([1.0]), jnp.array([[5.0], [3.0]]), 0.5, 1.0), [2.5])


def test_polyak_moves_the_target_by_tau():
    target, online = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    np.testing.assert_allclose(polyak(target, online, 0.005)["w"], 0.005)


def test_gcsl_loss_is_the_gaussian_negative_log_likelihood_of_the_action():
    action, mean, log_std = jnp.array([[0.5, -0.2]]), jnp.array([[0.4, 0.0]]), jnp.array([[0.0, -1.0]])
    std = np.exp([0.0, -1.0])
    expected = -np.sum(-0.5 * ((np.array([0.5, -0.2]) - [0.4, 0.0]) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(gcsl_losses.nll_loss(action, mean, log_std), expected, rtol=1e-6)


def _learner(name, **agent):
    from crl.config import from_dict
    from crl.run import build_envs
    from crl.train import Trainer
    from helpers import tiny_config

    cfg = from_dict({**tiny_config(network={"depth": 0, "width": 16}), "agent": {"name": name, **agent}})
    trainer = Trainer(cfg, build_envs(cfg)[0])
    return trainer, trainer.init_learner(jax.random.PRNGKey(0))


def _batch(state_dim, goal_dim, action_size, n=16):
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    ones = jnp.ones((n,), jnp.int32)
    return replay.Batch(
        state=jax.random.normal(k[0], (n, state_dim)), action=jax.random.uniform(k[1], (n, action_size), minval=-1),
        goal=jax.random.normal(k[2], (n, goal_dim)), offset=ones, horizon=ones, episode_id=ones, goal_episode_id=ones,
        next_state=jax.random.normal(k[3], (n, state_dim)), reward=(jnp.arange(n) % 2).astype(jnp.float32),
        relabelled=ones > 0,
    )


def _same(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_td3_moves_actor_and_targets_every_policy_delay_critic_steps():
    trainer, learner = _learner("td3", policy_delay=2)
    batch = _batch(trainer.state_dim, trainer.goal_dim, trainer.action_size)
    update = jax.jit(trainer.agent.update)
    history = [learner]
    for i in range(3):
        learner, metrics = update(learner, batch, jax.random.PRNGKey(i))
        history.append(learner)
        assert bool(jnp.isnan(metrics["actor_loss"])) == (i % 2 == 1)  # no actor step: reported as NaN
    for i in range(3):
        before, after = history[i], history[i + 1]
        assert not _same(before["critic"].params, after["critic"].params)  # the critics move every step
        moved = i % 2 == 0  # critic steps 0 and 2 carry an actor step
        for name in ("target_actor", "target_critic"):
            assert _same(before[name], after[name]) != moved, (i, name)
        assert _same(before["actor"].params, after["actor"].params) != moved, i
    # the targets trail the online networks by Polyak averaging with tau
    tau = trainer.agent.config.tau
    expected = polyak(history[0]["target_actor"], history[1]["actor"].params, tau)
    for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(history[1]["target_actor"])):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_sac_targets_follow_the_critics_and_alpha_moves_toward_the_target_entropy():
    trainer, learner = _learner("sac", her=True)
    batch = _batch(trainer.state_dim, trainer.goal_dim, trainer.action_size)
    new, metrics = jax.jit(trainer.agent.update)(learner, batch, jax.random.PRNGKey(0))
    tau = trainer.agent.config.tau
    expected = polyak(learner["target_critic"], new["critic"].params, tau)
    for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(new["target_critic"])):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    # alpha shrinks while the entropy is above its target (-0.5 x dims) and grows below it
    above = float(metrics["entropy"]) > trainer.agent.target_entropy
    shrank = float(new["alpha"].params["log_alpha"]) < float(learner["alpha"].params["log_alpha"])
    assert shrank == above
    assert set(metrics) >= {"critic_loss", "actor_loss", "alpha", "q_mean", "reward_mean"}


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_twin_q_networks_are_two_different_residual_mlps(name):
    trainer, learner = _learner(name)
    params = learner["critic"].params
    kernel = params["q"]["head"]["kernel"]
    assert kernel.shape[0] == 2 and not bool(jnp.array_equal(kernel[0], kernel[1]))
    s = jnp.zeros((3, trainer.state_dim))
    q = trainer.agent.q(params, s, jnp.zeros((3, trainer.action_size)), jnp.zeros((3, trainer.goal_dim)))
    assert q.shape == (2, 3)
