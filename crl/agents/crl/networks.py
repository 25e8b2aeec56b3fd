"""CRL's critic: two residual-MLP encoders, phi(s, a) and psi(g); the actor is the shared
tanh-Gaussian `crl.networks.Actor`."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from crl.networks import MLPConfig, ResidualMLP


class Critic(nn.Module):
    """phi(s, a) and psi(g), each a residual MLP with a `repr_dim` output."""

    config: MLPConfig
    repr_dim: int = 64

    def setup(self):
        self.sa_encoder = ResidualMLP(self.config, self.repr_dim)
        self.g_encoder = ResidualMLP(self.config, self.repr_dim)

    def __call__(self, state, action, goal):
        return self.encode_sa(state, action), self.encode_goal(goal)

    def encode_sa(self, state, action):
        return self.sa_encoder(jnp.concatenate([state, action], -1))

    def encode_goal(self, goal):
        return self.g_encoder(goal)
