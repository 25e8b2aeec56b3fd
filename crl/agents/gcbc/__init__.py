"""GCBC: goal-conditioned behaviour cloning of fixed data (`train.dataset`), the offline
baseline of OGBench and of the paper's offline test: the policy is fitted by maximum
likelihood to the action taken, given a goal relabelled to a future state of the same
trajectory, uniform over the steps left (OGBench's GCBC samples its actor goals from the
trajectory, not geometrically). The loss and the policy are GCSL's (crl/agents/gcsl):
GCSL is the same learner run online on the agent's own data. Its one shared setting is
train.actor_lr."""

from __future__ import annotations

import dataclasses

OWN_TRAIN_KEYS = ()
OFFLINE_ONLY = True


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "gcbc"

    def check(self) -> None:
        pass
