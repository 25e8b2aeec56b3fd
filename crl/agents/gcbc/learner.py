"""GCBC's learner: GCSL's maximum-likelihood step (crl/agents/gcsl/learner.py) on batches of
the fixed dataset; only the name and the requirement of train.dataset differ."""

from __future__ import annotations

from crl.agents.gcsl.learner import GCSL


class GCBC(GCSL):
    name = "gcbc"


def make(cfg, env) -> GCBC:
    return GCBC(cfg, env)
