"""The paper's six arm tasks on MJX: a Franka Panda reaching, pushing, bin-picking, grasping.

    env = make("arm_push_easy")           # GoalEnv; obs = concat(state, goal)
    state = env.reset(key); state = env.step(state, action)

mjcf.py     the Panda scene as Python data and the MJCF generator (no mesh files)
physics.py  compiled scene variants, the 25 x 2 ms MJX control step, the action map
tasks.py    the six ids as data: scene variant, start/goal regions, state layout
env.py      ArmEnv (reset, step, observation, success)
xla_flags.py  the CPU code-generation flag batched MJX needs (set before jax's backend starts)

Facts and their tests: docs/paper_fidelity.md ("Arm tasks"); design: docs/envs_manipulation.md.
"""

from __future__ import annotations

from envs.manipulation import xla_flags

xla_flags.ensure()  # before anything here can start jax's backend (see xla_flags.py)

import dataclasses  # noqa: E402

from envs.base import EnvSpec  # noqa: E402
from envs.manipulation.env import ArmEnv, ArmParams  # noqa: E402
from envs.manipulation.tasks import TASKS  # noqa: E402

ENV_IDS = sorted(TASKS)


def make(env_id: str, **kwargs) -> ArmEnv:
    """Build an arm env; kwargs are ArmParams fields (Hydra: env.params.<name>)."""
    if env_id not in TASKS:
        raise KeyError(f"env.id: unknown manipulation env {env_id!r}; allowed: {', '.join(ENV_IDS)}")
    allowed = sorted(f.name for f in dataclasses.fields(ArmParams))
    for name in kwargs:
        if name not in allowed:
            raise KeyError(f"env.params.{name}: not a parameter of {env_id}; allowed: {', '.join(allowed)}")
    params = ArmParams(**kwargs)
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
