"""TD3's networks: the deterministic actor a = tanh(MLP(s, g)) on the residual MLP of
`network.actor_*`, and the twin Q networks it shares with SAC (crl.agents.sac.networks)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from crl.agents.sac.networks import TwinQ  # noqa: F401  re-exported: TD3's critics
from crl.networks import MLPConfig, ResidualMLP


class DeterministicActor(nn.Module):
    config: MLPConfig
    action_size: int

    @nn.compact
    def __call__(self, state, goal):
        return jnp.tanh(ResidualMLP(self.config, self.action_size, name="trunk")(jnp.concatenate([state, goal], -1)))
