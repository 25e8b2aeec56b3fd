"""TD3 (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic
Methods"): a deterministic actor with Gaussian exploration noise, twin Q networks
Q(s, a, g) (the target takes the minimum), target-policy smoothing, and actor and target
updates every `policy_delay` critic steps, learning from the env's goal-reaching reward.
`agent.her=true` is TD3+HER. Its shared settings are train.actor_lr, critic_lr, discount
and update_order."""

from __future__ import annotations

import dataclasses

from crl.config_tree import ConfigError

OWN_TRAIN_KEYS = ()


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "td3"
    her: bool = False  # hindsight experience replay: relabel her_fraction of each batch
    her_fraction: float = 0.8  # HER's "future" strategy with k = 4: 4/5 of each batch
    tau: float = 0.005  # Polyak rate of the target networks (TD3 paper)
    policy_noise: float = 0.2  # std of the target policy's smoothing noise (TD3 paper)
    noise_clip: float = 0.5  # the smoothing noise is clipped to +-noise_clip (TD3 paper)
    policy_delay: int = 2  # critic steps per actor and target update (TD3 paper)
    exploration_noise: float = 0.1  # std of the Gaussian noise added to actions while collecting (TD3 paper)
    reward_scale: float = 1.0

    def check(self) -> None:
        for key in ("her_fraction", "tau"):
            value = getattr(self, key)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"agent.{key}: {value!r} is not allowed; use a number in (0, 1]")
        for key in ("policy_noise", "noise_clip", "exploration_noise"):
            value = getattr(self, key)
            if not value >= 0.0:
                raise ConfigError(f"agent.{key}: {value!r} is not allowed; use a number >= 0")
        if self.policy_delay < 1:
            raise ConfigError(f"agent.policy_delay: {self.policy_delay!r} is not allowed; use a positive integer")
        if not self.reward_scale > 0.0:
            raise ConfigError(f"agent.reward_scale: {self.reward_scale!r} is not allowed; use a positive number")
