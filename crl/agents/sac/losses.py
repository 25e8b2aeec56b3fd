"""SAC's losses (Haarnoja et al. 2018), goal-conditioned; the temperature loss is shared
(crl.agents.common.alpha_loss).

    target  y = scale r + gamma (min_j Q'_j(s', a', g) - alpha log pi(a' | s', g)),  a' ~ pi(. | s', g)
    critic  sum_j 0.5 mean (Q_j(s, a, g) - y)^2 over the samples that have a next state
    actor   mean(alpha log pi(a | s, g) - min_j Q_j(s, a, g)),  a ~ pi(. | s, g)

There is no terminal flag: the envs' episodes end by time (a truncation, which bootstraps),
and a robot that falls ends its episode before its last transition is stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_target(reward, next_q, next_log_prob, alpha, discount: float, reward_scale: float):
    """(B,) from the target twins' (num_q, B) values at (s', a')."""
    soft_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return jax.lax.stop_gradient(reward_scale * reward + discount * soft_value)


def critic_loss(q, target, mask):
    """q: (num_q, B); target, mask: (B,). Each twin's half mean squared error, summed."""
    weight = mask / jnp.maximum(jnp.sum(mask), 1.0)
    return jnp.sum(0.5 * jnp.sum(weight * (q - target) ** 2, axis=-1))


def actor_loss(log_prob, q, alpha):
    """log_prob: (B,); q: (num_q, B)."""
    return jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - jnp.min(q, axis=0))
