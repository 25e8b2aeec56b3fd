"""SAC's learner: per SGD step the twin critics against Polyak targets, then the actor
and the temperature (update_order as CRL's: critic_first, the actor steps against the
updated critics; actor_first, against the critics before this step), then the targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from crl.agents.common import SoftActorCritic, grad_norm, polyak
from crl.agents.sac import losses
from crl.agents.sac.networks import TwinQ
from crl.buffer import Relabelling


class SAC(SoftActorCritic):
    name = "sac"

    def __init__(self, cfg, env):
        super().__init__(cfg, env, TwinQ(cfg.network.mlp("critic")))
        a = cfg.agent
        # Without HER every goal is the commanded one; HER's "future" goals are uniform over the steps left.
        self.relabelling = Relabelling(future_fraction=a.her_fraction if a.her else 0.0, offsets="uniform")

    def init_learner(self, key, params=None) -> dict:
        learner = super().init_learner(key, params)
        return {**learner, "target_critic": jax.tree.map(jnp.copy, learner["critic"].params)}

    def value(self, params, state, goal):
        """min_j Q_j(s, pi(s, g), g) with the deterministic action (value maps)."""
        return jnp.min(self.q(params["critic"], state, self.act(params["actor"], state, goal), goal), axis=0)

    def q(self, critic_params, state, action, goal):
        return self.critic.apply({"params": critic_params}, state, action, goal)

    def critic_loss(self, critic_params, target_params, actor_params, alpha, batch, key):
        next_action, next_log_prob = self.sample(actor_params, batch.next_state, batch.goal, key)
        next_q = self.q(target_params, batch.next_state, next_action, batch.goal)
        target = losses.td_target(batch.reward, next_q, next_log_prob, alpha, self.train.discount,
                                  self.config.reward_scale)
        q = self.q(critic_params, batch.state, batch.action, batch.goal)
        mask = (batch.horizon > 0).astype(jnp.float32)
        loss = losses.critic_loss(q, target, mask)
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q), "q_target_mean": jnp.mean(target),
                      "reward_mean": jnp.mean(batch.reward), "relabelled": jnp.mean(batch.relabelled.astype(jnp.float32))}

    def actor_loss(self, actor_params, critic_params, alpha, batch, key):
        action, log_prob = self.sample(actor_params, batch.state, batch.goal, key)
        loss = losses.actor_loss(log_prob, self.q(critic_params, batch.state, action, batch.goal), alpha)
        return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob), "log_prob": log_prob}

    def update(self, learner: dict, batch, key) -> tuple[dict, dict]:
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(learner["alpha"].params["log_alpha"])
        old = learner["critic"]
        (_, critic_metrics), critic_grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            old.params, learner["target_critic"], learner["actor"].params, alpha, batch, k_critic
        )
        critic = old.apply_gradients(grads=critic_grads)

        actor_critic = old.params if self.train.update_order == "actor_first" else critic.params
        (_, actor_metrics), actor_grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            learner["actor"].params, actor_critic, alpha, batch, k_actor
        )
        actor = learner["actor"].apply_gradients(grads=actor_grads)

        alpha_state, a_loss = self.alpha_step(learner["alpha"], actor_metrics.pop("log_prob"))

        metrics = {
            **critic_metrics,
            **actor_metrics,
            "alpha_loss": a_loss,
            "alpha": jnp.exp(alpha_state.params["log_alpha"]),
            "critic_grad_norm": grad_norm(critic_grads),
            "actor_grad_norm": grad_norm(actor_grads),
        }
        return dict(
            actor=actor, critic=critic, alpha=alpha_state,
            target_critic=polyak(learner["target_critic"], critic.params, self.config.tau),
        ), metrics


def make(cfg, env) -> SAC:
    return SAC(cfg, env)
