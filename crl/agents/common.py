"""What several agents share: the tanh-Gaussian policy (CRL, SAC, GCSL), SAC's temperature
loss (CRL, SAC) and Polyak averaging (SAC, TD3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from crl.networks import Actor, deterministic_action, sample_action


class GaussianPolicy:
    """pi(a | s, g) = tanh(N(mean, std)) from `crl.networks.Actor`; acting samples it,
    evaluation takes tanh(mean)."""

    def __init__(self, cfg, env):
        self.actor = Actor(cfg.network.mlp("actor"), env.action_size, cfg.network.log_prob)
        self.state_dim, self.goal_dim, self.action_size = env.state_dim, len(env.goal_indices), env.action_size

    def init_actor(self, key):
        return self.actor.init(key, jnp.zeros((1, self.state_dim)), jnp.zeros((1, self.goal_dim)))["params"]

    def sample(self, actor_params, state, goal, key):
        """(action, log pi(action))."""
        mean, log_std = self.actor.apply({"params": actor_params}, state, goal)
        return sample_action(mean, log_std, key, self.actor.log_prob)

    def explore(self, actor_params, state, goal, key):
        return self.sample(actor_params, state, goal, key)[0]

    def act(self, actor_params, state, goal, key=None):
        mean, _ = self.actor.apply({"params": actor_params}, state, goal)
        return deterministic_action(mean)


def polyak(target, online, tau: float):
    """target <- (1 - tau) target + tau online, leaf by leaf."""
    return optax.incremental_update(online, target, tau)


def grad_norm(grads) -> jax.Array:
    return optax.tree.norm(grads)


def alpha_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """SAC temperature loss: alpha grows while the entropy is below its target."""
    return jnp.mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy))
