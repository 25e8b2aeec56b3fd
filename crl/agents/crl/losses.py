"""CRL's losses: energies, the contrastive critic losses, the actor and temperature losses.

Logits: `logits[i, j] = f(phi(s_i, a_i), psi(g_j))`; the positives are on the diagonal
(g_i is a future state of the trajectory of (s_i, a_i)), every other column a negative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from crl.agents.common import alpha_loss  # noqa: F401  SAC's temperature loss, shared

ENERGIES = ("l2", "l2_squared", "dot", "cosine")
CONTRASTIVE_LOSSES = ("forward", "backward", "symmetric")
_EPS = 1e-8


def energy_matrix(phi: jax.Array, psi: jax.Array, energy: str) -> jax.Array:
    """All pairs: (B, d) x (B, d) -> (B, B)."""
    if energy in ("l2", "l2_squared"):
        sq = squared_distances(phi, psi)
        return -jnp.sqrt(sq + _EPS) if energy == "l2" else -sq
    if energy == "dot":
        return phi @ psi.T
    if energy == "cosine":
        phi_n = phi / (jnp.linalg.norm(phi, axis=-1, keepdims=True) + _EPS)
        psi_n = psi / (jnp.linalg.norm(psi, axis=-1, keepdims=True) + _EPS)
        return phi_n @ psi_n.T
    raise ValueError(f"train.energy: {energy!r} is not allowed; use one of {', '.join(ENERGIES)}")


def squared_distances(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """|phi_i - psi_j|^2 for all pairs as |phi_i|^2 + |psi_j|^2 - 2 phi_i.psi_j.

    One (B, d) x (d, B) matmul instead of a (B, B, d) difference tensor (64 MiB at batch
    512, read and written several times in the backward pass). The cross term runs at
    full float32 precision (GPUs would otherwise use TF32, whose rounding the
    cancellation near the diagonal would expose); rounding below zero is clamped.
    """
    cross = jnp.matmul(phi, psi.T, precision=jax.lax.Precision.HIGHEST)
    sq = jnp.sum(phi**2, axis=-1)[:, None] + jnp.sum(psi**2, axis=-1)[None, :] - 2.0 * cross
    return jnp.maximum(sq, 0.0)


def energy_pairs(phi: jax.Array, psi: jax.Array, energy: str) -> jax.Array:
    """Matched pairs only: (B, d) x (B, d) -> (B,); equals the diagonal of energy_matrix."""
    if energy in ("l2", "l2_squared"):
        sq = jnp.sum((phi - psi) ** 2, axis=-1)
        return -jnp.sqrt(sq + _EPS) if energy == "l2" else -sq
    if energy == "dot":
        return jnp.sum(phi * psi, axis=-1)
    if energy == "cosine":
        num = jnp.sum(phi * psi, axis=-1)
        return num / ((jnp.linalg.norm(phi, axis=-1) + _EPS) * (jnp.linalg.norm(psi, axis=-1) + _EPS))
    raise ValueError(f"train.energy: {energy!r} is not allowed; use one of {', '.join(ENERGIES)}")


def _info_nce(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross-entropy of each row against its diagonal entry; returns (loss, row logsumexp)."""
    lse = jax.nn.logsumexp(logits, axis=1)
    return jnp.mean(lse - jnp.diag(logits)), lse


def contrastive_loss(logits: jax.Array, kind: str, logsumexp_penalty: float) -> tuple[jax.Array, dict]:
    """InfoNCE over a (B, B) logit matrix plus `logsumexp_penalty * mean(lse^2)`.

    forward:   classify the goal of each (s, a) among the batch's goals (rows).
    backward:  classify the (s, a) of each goal among the batch's (s, a) (columns).
    symmetric: the mean of the two (each with its own logsumexp penalty).
    """
    if kind == "forward":
        nce, lse = _info_nce(logits)
        penalty = jnp.mean(lse**2)
    elif kind == "backward":
        nce, lse = _info_nce(logits.T)
        penalty = jnp.mean(lse**2)
    elif kind == "symmetric":
        nce_f, lse_f = _info_nce(logits)
        nce_b, lse_b = _info_nce(logits.T)
        nce = 0.5 * (nce_f + nce_b)
        lse = lse_f
        penalty = 0.5 * (jnp.mean(lse_f**2) + jnp.mean(lse_b**2))
    else:
        raise ValueError(f"train.contrastive_loss: {kind!r} is not allowed; use one of {', '.join(CONTRASTIVE_LOSSES)}")
    loss = nce + logsumexp_penalty * penalty
    b = logits.shape[0]
    diag = jnp.diag(logits)
    off_diag_mean = (jnp.sum(logits) - jnp.sum(diag)) / (b * (b - 1))
    metrics = {
        "critic_loss": loss,
        "infonce": nce,
        "categorical_accuracy": jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(b)),
        "logits_pos": jnp.mean(diag),
        "logits_neg": off_diag_mean,
        "logsumexp": jnp.mean(lse),
    }
    return loss, metrics


def actor_loss(log_prob: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """mean(alpha * log pi(a|s,g) - f(s, a, g)); alpha is held fixed for this loss."""
    return jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - q)
