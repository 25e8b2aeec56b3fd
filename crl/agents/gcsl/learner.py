"""GCSL's learner: one maximum-likelihood step of the actor on a batch of the agent's own
transitions, each goal a future state of its own trajectory (uniform over the steps left).
The actor is `crl.networks.Actor` read as a Gaussian over the action (no tanh): acting
samples it and clips to [-1, 1]; evaluation takes clip(mean)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from crl.agents.common import GaussianPolicy, grad_norm
from crl.agents.gcsl import losses
from crl.buffer import Relabelling


class GCSL(GaussianPolicy):
    name = "gcsl"
    relabelling = Relabelling(future_fraction=1.0, offsets="uniform")

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self.config = cfg.agent
        self.actor_opt = optax.adam(cfg.train.actor_lr)

    def explore(self, actor_params, state, goal, key):
        mean, log_std = self.actor.apply({"params": actor_params}, state, goal)
        return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)

    def act(self, actor_params, state, goal, key=None):
        mean, _ = self.actor.apply({"params": actor_params}, state, goal)
        return jnp.clip(mean, -1.0, 1.0)

    def init_params(self, key) -> dict:
        return {"actor": self.init_actor(key)}

    def init_learner(self, key, params=None) -> dict:
        params = self.init_params(key) if params is None else params
        return dict(actor=TrainState.create(apply_fn=self.actor.apply, params=params["actor"], tx=self.actor_opt))

    def params(self, learner) -> dict:
        return {"actor": learner["actor"].params}

    def actor_loss(self, actor_params, batch):
        mean, log_std = self.actor.apply({"params": actor_params}, batch.state, batch.goal)
        loss = losses.nll_loss(batch.action, mean, log_std)
        return loss, {"actor_loss": loss, "log_std_mean": jnp.mean(log_std)}

    def update(self, learner: dict, batch, key) -> tuple[dict, dict]:
        (_, metrics), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(learner["actor"].params, batch)
        actor = learner["actor"].apply_gradients(grads=grads)
        return dict(actor=actor), {**metrics, "actor_grad_norm": grad_norm(grads)}


def make(cfg, env) -> GCSL:
    return GCSL(cfg, env)
