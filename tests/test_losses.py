import jax.numpy as jnp
import numpy as np
import pytest

from crl.agents.crl import losses

PHI = jnp.array([[0.0, 0.0], [1.0, 0.0]])
PSI = jnp.array([[0.0, 1.0], [1.0, 1.0]])


def test_energies_by_hand():
    # distances: |phi0-psi0| = 1, |phi0-psi1| = sqrt2, |phi1-psi0| = sqrt2, |phi1-psi1| = 1
    r2 = np.sqrt(2.0)
    np.testing.assert_allclose(losses.energy_matrix(PHI, PSI, "l2"), [[-1, -r2], [-r2, -1]], atol=1e-4)
    np.testing.assert_allclose(losses.energy_matrix(PHI, PSI, "l2_squared"), [[-1, -2], [-2, -1]], atol=1e-6)
    np.testing.assert_allclose(losses.energy_matrix(PHI, PSI, "dot"), [[0, 0], [0, 1]], atol=1e-6)
    # cosine: phi0 is the zero vector -> 0 similarity; phi1=(1,0) vs psi0=(0,1): 0, vs psi1: 1/sqrt2
    np.testing.assert_allclose(losses.energy_matrix(PHI, PSI, "cosine"), [[0, 0], [0, 1 / r2]], atol=1e-4)


@pytest.mark.parametrize("energy", losses.ENERGIES)
def test_pairs_equal_the_diagonal(energy):
    phi = jnp.arange(12.0).reshape(4, 3) / 7
    psi = jnp.cos(jnp.arange(12.0)).reshape(4, 3)
    np.testing.assert_allclose(
        losses.energy_pairs(phi, psi, energy), jnp.diag(losses.energy_matrix(phi, psi, energy)), rtol=1e-5, atol=1e-6
    )


LOGITS = jnp.array([[2.0, 0.0], [1.0, 3.0]])


def _lse(a, b):
    return np.log(np.exp(a) + np.exp(b))


def test_forward_infonce_by_hand():
    row0, row1 = _lse(2, 0), _lse(1, 3)
    nce = ((row0 - 2) + (row1 - 3)) / 2
    penalty = (row0**2 + row1**2) / 2
    loss, m = losses.contrastive_loss(LOGITS, "forward", 0.1)
    np.testing.assert_allclose(loss, nce + 0.1 * penalty, rtol=1e-6)
    np.testing.assert_allclose(m["categorical_accuracy"], 1.0)
    np.testing.assert_allclose(m["logits_pos"], 2.5)
    np.testing.assert_allclose(m["logits_neg"], 0.5)
    np.testing.assert_allclose(m["logsumexp"], (row0 + row1) / 2, rtol=1e-6)


def test_backward_and_symmetric_by_hand():
    col0, col1 = _lse(2, 1), _lse(0, 3)
    backward = ((col0 - 2) + (col1 - 3)) / 2
    loss_b, _ = losses.contrastive_loss(LOGITS, "backward", 0.0)
    np.testing.assert_allclose(loss_b, backward, rtol=1e-6)
    row0, row1 = _lse(2, 0), _lse(1, 3)
    forward = ((row0 - 2) + (row1 - 3)) / 2
    loss_s, _ = losses.contrastive_loss(LOGITS, "symmetric", 0.0)
    np.testing.assert_allclose(loss_s, (forward + backward) / 2, rtol=1e-6)
    loss_sp, _ = losses.contrastive_loss(LOGITS, "symmetric", 1.0)
    pen = ((row0**2 + row1**2) / 2 + (col0**2 + col1**2) / 2) / 2
    np.testing.assert_allclose(loss_sp, (forward + backward) / 2 + pen, rtol=1e-6)


def test_accuracy_counts_wrong_rows():
    _, m = losses.contrastive_loss(jnp.array([[0.0, 5.0], [0.0, 1.0]]), "forward", 0.0)
    np.testing.assert_allclose(m["categorical_accuracy"], 0.5)


def test_unknown_names_fail_with_the_key():
    with pytest.raises(ValueError, match="train.energy"):
        losses.energy_matrix(PHI, PSI, "manhattan")
    with pytest.raises(ValueError, match="train.contrastive_loss"):
        losses.contrastive_loss(LOGITS, "sideways", 0.1)


def test_actor_and_alpha_losses_by_hand():
    log_prob = jnp.array([-1.0, -3.0])
    q = jnp.array([-0.5, -1.5])
    np.testing.assert_allclose(losses.actor_loss(log_prob, q, jnp.array(0.5)), ((0.5 * -1 + 0.5) + (0.5 * -3 + 1.5)) / 2)
    # alpha = e^0 = 1; -log_prob - target = (1 + 1) and (3 + 1) with target -1 -> mean 3
    np.testing.assert_allclose(losses.alpha_loss(jnp.array(0.0), log_prob, -1.0), 3.0)
