"""GCSL's loss: the negative log-likelihood of the action taken under the tanh-Gaussian
policy given the relabelled goal, -mean log pi(a | s, g). The action is mapped back
through tanh (u = atanh(a), clipped inside (-1, 1)); the tanh Jacobian does not depend on
the parameters, so the loss is the Gaussian's NLL of u (what the gradient sees)."""

from __future__ import annotations

import jax.numpy as jnp

ACTION_CLIP = 1.0 - 1e-6  # atanh(1 - 1e-6) = 7.25: actions stored at the bound stay finite


def pre_tanh(action):
    return jnp.arctanh(jnp.clip(action, -ACTION_CLIP, ACTION_CLIP))


def gaussian_log_prob(u, mean, log_std):
    """(B,): log N(u; mean, exp(log_std)) summed over action dimensions."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def nll_loss(action, mean, log_std):
    return -jnp.mean(gaussian_log_prob(pre_tanh(action), mean, log_std))
