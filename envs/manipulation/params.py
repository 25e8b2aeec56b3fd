"""The arm family's env parameters (`env.params` in a config), declared once (envs/params.py)."""

from __future__ import annotations

import dataclasses

from envs.params import param


@dataclasses.dataclass(frozen=True)
class ArmParams:
    """Keyword arguments of `make` (episode_length comes from env.episode_length). The radii
    are the paper's; arm_grasp uses its own pair of thresholds (tasks.GRASP_SUCCESS)."""

    episode_length: int = param(1000, low=1, key="env.episode_length", doc="steps per episode (the paper wraps at 1000)")
    success_radius: float = param(0.1, low=0.0, low_open=True, doc="cube (or hand) to goal, metres")
    success_radius_easy: float = param(0.3, low=0.0, low_open=True, doc="the easy success metric's radius")
    success_radius_hard: float = param(0.03, low=0.0, low_open=True, doc="the hard success metric's radius")
