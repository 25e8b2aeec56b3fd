"""GCSL (Ghosh et al. 2021, "Learning to Reach Goals via Iterated Supervised Learning"):
goal-conditioned behaviour cloning of the agent's own data, every goal relabelled to a
future state of the same trajectory (uniform over the steps left, as the paper's
hindsight relabelling), the tanh-Gaussian actor fitted by maximum likelihood of the action
taken. No critic and no reward. Its one shared setting is train.actor_lr."""

from __future__ import annotations

import dataclasses

OWN_TRAIN_KEYS = ()


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "gcsl"

    def check(self) -> None:
        pass
