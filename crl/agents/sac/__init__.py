"""SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"): a
tanh-Gaussian actor, twin Q networks Q(s, a, g) with Polyak-averaged targets, and automatic
entropy tuning, learning from the env's goal-reaching reward. `agent.her=true` is SAC+HER
(Andrychowicz et al. 2017): a fraction of each batch gets a future state of its own episode
as goal, with the reward recomputed for it. Its shared settings are train.actor_lr,
critic_lr, alpha_lr, discount, target_entropy_scale and update_order."""

from __future__ import annotations

import dataclasses

from crl.config_tree import ConfigError

OWN_TRAIN_KEYS = ()


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "sac"
    her: bool = False  # hindsight experience replay: relabel her_fraction of each batch
    her_fraction: float = 0.8  # HER's "future" strategy with k = 4 relabelled goals per real one: 4/5
    tau: float = 0.005  # Polyak rate of the target networks (SAC paper)
    reward_scale: float = 1.0  # multiplies the env's 0/1 reward in the TD target

    def check(self) -> None:
        if not 0.0 < self.her_fraction <= 1.0:
            raise ConfigError(f"agent.her_fraction: {self.her_fraction!r} is not allowed; use a number in (0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"agent.tau: {self.tau!r} is not allowed; use a number in (0, 1]")
        if not self.reward_scale > 0.0:
            raise ConfigError(f"agent.reward_scale: {self.reward_scale!r} is not allowed; use a positive number")
