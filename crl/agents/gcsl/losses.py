"""GCSL's loss: the negative log-likelihood of the action taken under the policy given the
relabelled goal, -mean log pi(a | s, g). The policy is a Gaussian over the action itself
(no tanh; acting clips it to [-1, 1]), as OGBench's GCBC fits continuous actions: a
tanh-Gaussian would have to fit atanh(a), whose tails (atanh(0.999999) = 7.3 for an action
at the bound) measured a 3x wider policy on the point maze (docs/agents.md)."""

from __future__ import annotations

import jax.numpy as jnp


def gaussian_log_prob(x, mean, log_std):
    """(B,): log N(x; mean, exp(log_std)) summed over action dimensions."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def nll_loss(action, mean, log_std):
    return -jnp.mean(gaussian_log_prob(action, mean, log_std))
