"""What several agents share: the tanh-Gaussian policy (CRL, SAC, GCSL), SAC's temperature
loss (CRL, SAC) and Polyak averaging (SAC, TD3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

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


class SoftActorCritic(GaussianPolicy):
    """What CRL and SAC share: the tanh-Gaussian actor, a critic module `self.critic`
    (called as critic(state, action, goal)), a learned temperature exp(log alpha) with
    SAC's loss, and one Adam optimiser each (train.actor_lr, critic_lr, alpha_lr)."""

    def __init__(self, cfg, env, critic):
        super().__init__(cfg, env)
        t = cfg.train
        self.config, self.train, self.critic = cfg.agent, t, critic
        self.actor_opt, self.critic_opt, self.alpha_opt = optax.adam(t.actor_lr), optax.adam(t.critic_lr), optax.adam(t.alpha_lr)
        self.target_entropy = t.target_entropy_scale * env.action_size

    def init_params(self, key) -> dict:
        k_actor, k_critic = jax.random.split(key)
        state0, goal0 = jnp.zeros((1, self.state_dim)), jnp.zeros((1, self.goal_dim))
        return {
            "actor": self.init_actor(k_actor),
            "critic": self.critic.init(k_critic, state0, jnp.zeros((1, self.action_size)), goal0)["params"],
            "log_alpha": jnp.zeros((), jnp.float32),
        }

    def init_learner(self, key, params=None) -> dict:
        params = self.init_params(key) if params is None else params
        return dict(
            actor=TrainState.create(apply_fn=self.actor.apply, params=params["actor"], tx=self.actor_opt),
            critic=TrainState.create(apply_fn=self.critic.apply, params=params["critic"], tx=self.critic_opt),
            alpha=TrainState.create(apply_fn=None, params={"log_alpha": params["log_alpha"]}, tx=self.alpha_opt),
        )

    def params(self, learner) -> dict:
        return {"actor": learner["actor"].params, "critic": learner["critic"].params,
                "log_alpha": learner["alpha"].params["log_alpha"]}

    def alpha_step(self, alpha: TrainState, log_prob) -> tuple[TrainState, jax.Array]:
        """One step of the temperature toward the target entropy, given the actor step's log pi."""
        loss, grad = jax.value_and_grad(lambda p: alpha_loss(p["log_alpha"], log_prob, self.target_entropy))(alpha.params)
        return alpha.apply_gradients(grads=grad), loss


def polyak(target, online, tau: float):
    """target <- (1 - tau) target + tau online, leaf by leaf."""
    return optax.incremental_update(online, target, tau)


def grad_norm(grads) -> jax.Array:
    return optax.tree.norm(grads)


def alpha_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """SAC temperature loss: alpha grows while the entropy is below its target."""
    return jnp.mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy))
