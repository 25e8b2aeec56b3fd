"""Building an arm env from its id (the heavy half of envs.manipulation: MuJoCo, MJX)."""

from __future__ import annotations

from envs.base import EnvSpec
from envs.manipulation.env import ArmEnv
from envs.manipulation.params import ArmParams
from envs.manipulation.tasks import TASKS
from envs.params import build as build_params

ENV_IDS = sorted(TASKS)


def build(env_id: str, **kwargs) -> ArmEnv:
    if env_id not in TASKS:
        raise KeyError(f"env.id: unknown manipulation env {env_id!r}; allowed: {', '.join(ENV_IDS)}")
    params = build_params(ArmParams, env_id, kwargs)
    task = TASKS[env_id]
    spec = EnvSpec(
        env_id=env_id,
        state_dim=task.state_dim,
        goal_indices=task.goal_indices,
        action_size=task.action_size,
        episode_length=params.episode_length,
        success_radius=params.success_radius,
        success_radius_easy=params.success_radius_easy,
    )
    return ArmEnv(spec, params, task)
