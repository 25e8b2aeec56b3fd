"""CRL, the paper's contrastive RL: a critic f(s, a, g) = energy(phi(s, a), psi(g)) trained
with InfoNCE on future-state goals, and a tanh-Gaussian actor that maximises it with SAC's
entropy term. Its settings stay in train.* (energy, contrastive_loss, logsumexp_penalty,
update_order, target_entropy_scale, the learning rates), where they have always been."""

from __future__ import annotations

import dataclasses

# The train.* keys only this agent reads; another agent refuses them at a non-default value.
OWN_TRAIN_KEYS = ("energy", "contrastive_loss", "logsumexp_penalty")


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "crl"

    def check(self) -> None:
        pass
