"""CRL's learner: one SGD step of the critic, the actor and the temperature on a batch whose
goals are all future states (geometric offsets, the discount as their parameter).

update_order critic_first (ours): the actor steps against the updated critic;
actor_first (the paper's code): against the critic as it was before this step.
The critic's step never depends on the actor, so only the actor's critic differs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from crl.agents.common import SoftActorCritic, grad_norm
from crl.agents.crl import losses
from crl.agents.crl.networks import Critic
from crl.buffer import Relabelling


class CRL(SoftActorCritic):
    name = "crl"
    relabelling = Relabelling(future_fraction=1.0, offsets="geometric")

    def __init__(self, cfg, env):
        super().__init__(cfg, env, Critic(cfg.network.mlp("critic"), cfg.network.repr_dim))

    def value(self, params, state, goal):
        """f(phi(s, pi(s, g)), psi(g)) with the deterministic action (value maps)."""
        phi, psi = self.critic.apply({"params": params["critic"]}, state, self.act(params["actor"], state, goal), goal)
        return losses.energy_pairs(phi, psi, self.train.energy)

    # -- losses -----------------------------------------------------------------------------

    def critic_loss(self, critic_params, batch):
        phi, psi = self.critic.apply({"params": critic_params}, batch.state, batch.action, batch.goal)
        logits = losses.energy_matrix(phi, psi, self.train.energy)
        return losses.contrastive_loss(logits, self.train.contrastive_loss, self.train.logsumexp_penalty)

    def actor_loss(self, actor_params, critic_params, log_alpha, batch, key):
        action, log_prob = self.sample(actor_params, batch.state, batch.goal, key)
        phi, psi = self.critic.apply({"params": critic_params}, batch.state, action, batch.goal)
        q = losses.energy_pairs(phi, psi, self.train.energy)
        loss = losses.actor_loss(log_prob, q, jnp.exp(log_alpha))
        return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob), "log_prob": log_prob}

    # -- the step ---------------------------------------------------------------------------

    def update(self, learner: dict, batch, key) -> tuple[dict, dict]:
        """One gradient step of the critic, the actor and alpha, on the same batch."""
        old = learner["critic"]
        (_, critic_metrics), critic_grads = jax.value_and_grad(self.critic_loss, has_aux=True)(old.params, batch)
        critic = old.apply_gradients(grads=critic_grads)

        actor_critic = old.params if self.train.update_order == "actor_first" else critic.params
        log_alpha = learner["alpha"].params["log_alpha"]
        (_, actor_metrics), actor_grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            learner["actor"].params, actor_critic, log_alpha, batch, key
        )
        actor = learner["actor"].apply_gradients(grads=actor_grads)

        alpha, alpha_loss = self.alpha_step(learner["alpha"], actor_metrics.pop("log_prob"))

        metrics = {
            **critic_metrics,
            **actor_metrics,
            "alpha_loss": alpha_loss,
            "alpha": jnp.exp(alpha.params["log_alpha"]),
            "critic_grad_norm": grad_norm(critic_grads),
            "actor_grad_norm": grad_norm(actor_grads),
        }
        return dict(actor=actor, critic=critic, alpha=alpha), metrics


def make(cfg, env) -> CRL:
    return CRL(cfg, env)
