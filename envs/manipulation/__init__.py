"""The paper's six arm tasks on MJX: a Franka Panda reaching, pushing, bin-picking, grasping.

    env = make("arm_push_easy")           # GoalEnv; obs = concat(state, goal)
    state = env.reset(key); state = env.step(state, action)

mjcf.py     the Panda scene as Python data and the MJCF generator (no mesh files)
physics.py  compiled scene variants, the 25 x 2 ms MJX control step, the action map
tasks.py    the six ids as data: scene variant, start/goal regions, state layout
env.py      ArmEnv (reset, step, observation, success)
params.py   the env parameters, declared with their allowed values
build.py    make's heavy half (MJX)
xla_flags.py  the CPU code-generation flag batched MJX needs (set before jax's backend starts)

Facts and their tests: docs/paper_fidelity.md ("Arm tasks"); design: docs/envs_manipulation.md.
"""

from __future__ import annotations

from envs.manipulation import xla_flags

xla_flags.ensure()  # before anything can start jax's backend (see xla_flags.py)

# Light on purpose: the ids are data (tasks.py), so the registry knows them without MuJoCo.
from envs.manipulation.tasks import TASKS  # noqa: E402

ENV_IDS = sorted(TASKS)


def make(env_id: str, **kwargs):
    """Build an arm env (an `ArmEnv`); kwargs are ArmParams fields (Hydra: env.params.<name>)."""
    from envs.manipulation.build import build  # lazy: MuJoCo/MJX are slow to import

    return build(env_id, **kwargs)
