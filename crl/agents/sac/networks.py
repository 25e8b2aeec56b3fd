"""Twin Q networks for the TD agents (SAC, TD3): Q_j(s, a, g), j = 1, 2, each the residual
MLP of `network.critic_*` on concat(s, a, g) with a scalar head, as one vmapped module
(a leading axis of 2 on every parameter), so both run as one batched computation."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from crl.networks import MLPConfig, ResidualMLP


class TwinQ(nn.Module):
    config: MLPConfig
    num_q: int = 2

    @nn.compact
    def __call__(self, state, action, goal):
        """(num_q, B) Q values."""
        ensemble = nn.vmap(
            ResidualMLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_q,
        )
        q = ensemble(self.config, 1, name="q")(jnp.concatenate([state, action, goal], -1))
        return q[..., 0]
