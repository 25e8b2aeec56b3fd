"""TD3's losses (Fujimoto et al. 2018), goal-conditioned.

    smoothed target action  a' = clip(mu'(s', g) + clip(N(0, policy_noise), -noise_clip, noise_clip), -1, 1)
    target                  y = scale r + gamma min_j Q'_j(s', a', g)
    critic                  sum_j mean (Q_j(s, a, g) - y)^2 over the samples that have a next state
    actor (every policy_delay critic steps)   -mean Q_1(s, mu(s, g), g)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smoothed_action(action, key, policy_noise: float, noise_clip: float):
    noise = jnp.clip(policy_noise * jax.random.normal(key, action.shape), -noise_clip, noise_clip)
    return jnp.clip(action + noise, -1.0, 1.0)


def td_target(reward, next_q, discount: float, reward_scale: float):
    return jax.lax.stop_gradient(reward_scale * reward + discount * jnp.min(next_q, axis=0))


def critic_loss(q, target, mask):
    """q: (num_q, B); target, mask: (B,). Each twin's mean squared error, summed (TD3 paper)."""
    weight = mask / jnp.maximum(jnp.sum(mask), 1.0)
    return jnp.sum(jnp.sum(weight * (q - target) ** 2, axis=-1))


def actor_loss(q_first):
    return -jnp.mean(q_first)
