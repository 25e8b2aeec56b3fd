"""TD3's learner: every SGD step the twin critics; every `policy_delay`-th step also the
actor (update_order as CRL's: critic_first, against the updated critics; actor_first,
against the critics before this step) and then the Polyak targets of actor and critics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from crl.agents.common import grad_norm, polyak
from crl.agents.td3 import losses
from crl.agents.td3.networks import DeterministicActor, TwinQ
from crl.buffer import Relabelling


class TD3:
    name = "td3"

    def __init__(self, cfg, env):
        t, a = cfg.train, cfg.agent
        self.config, self.train = a, t
        self.state_dim, self.goal_dim, self.action_size = env.state_dim, len(env.goal_indices), env.action_size
        self.relabelling = Relabelling(future_fraction=a.her_fraction if a.her else 0.0, offsets="uniform")
        self.actor = DeterministicActor(cfg.network.mlp("actor"), env.action_size)
        self.critic = TwinQ(cfg.network.mlp("critic"))
        self.actor_opt, self.critic_opt = optax.adam(t.actor_lr), optax.adam(t.critic_lr)

    def init_params(self, key) -> dict:
        k_actor, k_critic = jax.random.split(key)
        state0, goal0 = jnp.zeros((1, self.state_dim)), jnp.zeros((1, self.goal_dim))
        return {
            "actor": self.actor.init(k_actor, state0, goal0)["params"],
            "critic": self.critic.init(k_critic, state0, jnp.zeros((1, self.action_size)), goal0)["params"],
        }

    def init_learner(self, key, params=None) -> dict:
        params = self.init_params(key) if params is None else params
        return dict(
            actor=TrainState.create(apply_fn=self.actor.apply, params=params["actor"], tx=self.actor_opt),
            critic=TrainState.create(apply_fn=self.critic.apply, params=params["critic"], tx=self.critic_opt),
            target_actor=jax.tree.map(jnp.copy, params["actor"]),
            target_critic=jax.tree.map(jnp.copy, params["critic"]),
        )

    def params(self, learner) -> dict:
        return {"actor": learner["actor"].params, "critic": learner["critic"].params}

    # -- acting -----------------------------------------------------------------------------

    def act(self, actor_params, state, goal, key=None):
        return self.actor.apply({"params": actor_params}, state, goal)

    def explore(self, actor_params, state, goal, key):
        action = self.act(actor_params, state, goal)
        return jnp.clip(action + self.config.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)

    # -- learning ---------------------------------------------------------------------------

    def value(self, params, state, goal):
        """min_j Q_j(s, mu(s, g), g) (value maps)."""
        return jnp.min(self.q(params["critic"], state, self.act(params["actor"], state, goal), goal), axis=0)

    def q(self, critic_params, state, action, goal):
        return self.critic.apply({"params": critic_params}, state, action, goal)

    def critic_loss(self, critic_params, target_critic, target_actor, batch, key):
        a = self.config
        next_action = losses.smoothed_action(self.act(target_actor, batch.next_state, batch.goal), key,
                                             a.policy_noise, a.noise_clip)
        target = losses.td_target(batch.reward, self.q(target_critic, batch.next_state, next_action, batch.goal),
                                  self.train.discount, a.reward_scale)
        q = self.q(critic_params, batch.state, batch.action, batch.goal)
        loss = losses.critic_loss(q, target, (batch.horizon > 0).astype(jnp.float32))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q), "q_target_mean": jnp.mean(target),
                      "reward_mean": jnp.mean(batch.reward), "relabelled": jnp.mean(batch.relabelled.astype(jnp.float32))}

    def actor_loss(self, actor_params, critic_params, batch):
        q = self.q(critic_params, batch.state, self.act(actor_params, batch.state, batch.goal), batch.goal)
        loss = losses.actor_loss(q[0])
        return loss, {"actor_loss": loss}

    def update(self, learner: dict, batch, key) -> tuple[dict, dict]:
        old = learner["critic"]
        (_, critic_metrics), critic_grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            old.params, learner["target_critic"], learner["target_actor"], batch, key
        )
        critic = old.apply_gradients(grads=critic_grads)
        actor_critic = old.params if self.train.update_order == "actor_first" else critic.params

        def actor_step(_):
            (_, m), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(learner["actor"].params, actor_critic, batch)
            actor = learner["actor"].apply_gradients(grads=grads)
            tau = self.config.tau
            targets = (polyak(learner["target_actor"], actor.params, tau), polyak(learner["target_critic"], critic.params, tau))
            return actor, targets, m["actor_loss"], grad_norm(grads)

        def skip(_):
            nan = jnp.full((), jnp.nan, jnp.float32)  # no actor step: the epoch mean skips it (nanmean)
            return learner["actor"], (learner["target_actor"], learner["target_critic"]), nan, nan

        # The critics' step count before this step: the actor moves on steps 0, d, 2d, ...
        actor, (target_actor, target_critic), a_loss, a_norm = jax.lax.cond(
            old.step % self.config.policy_delay == 0, actor_step, skip, None
        )
        metrics = {**critic_metrics, "actor_loss": a_loss, "critic_grad_norm": grad_norm(critic_grads),
                   "actor_grad_norm": a_norm}
        return dict(actor=actor, critic=critic, target_actor=target_actor, target_critic=target_critic), metrics


def make(cfg, env) -> TD3:
    return TD3(cfg, env)
