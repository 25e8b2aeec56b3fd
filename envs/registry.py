"""make(env_id) -> GoalEnv, for every task family, without importing the heavy ones early.

Each family module (`envs.point_maze`, `envs.locomotion`, `envs.manipulation`) exposes
`ENV_IDS` and `make(env_id, **kwargs)`. The ids are listed here too, so that an unknown id
is reported (with the known ids) without importing Brax or MuJoCo.
"""

from __future__ import annotations

import importlib
import importlib.util

from envs.base import GoalEnv

_MAZES = ["u_maze", "u4_maze", "u5_maze", "big_maze", "hardest_maze"]

FAMILIES: dict[str, list[str]] = {
    "envs.point_maze": (
        ["point_open"]
        + [f"point_{m}" for m in _MAZES]
        + [f"point_{m}_eval" for m in _MAZES]
    ),
    "envs.locomotion": (
        ["ant", "ant_ball", "ant_push", "humanoid"]
        + [f"ant_{m}" for m in _MAZES]
        + [f"ant_{m}_eval" for m in _MAZES]
        + [f"humanoid_{m}" for m in ["u_maze", "big_maze", "hardest_maze"]]
        + [f"humanoid_{m}_eval" for m in ["u_maze", "big_maze", "hardest_maze"]]
    ),
    "envs.manipulation": [
        "arm_reach", "arm_push_easy", "arm_push_hard",
        "arm_binpick_easy", "arm_binpick_hard", "arm_grasp",
    ],
}

DEFAULT_ENV_ID = "point_u_maze"


def _family_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def known_ids() -> list[str]:
    """Every id that `make` accepts on this install."""
    return sorted(i for mod, ids in FAMILIES.items() if _family_available(mod) for i in ids)


def family_of(env_id: str) -> str:
    for module, ids in FAMILIES.items():
        if env_id in ids and _family_available(module):
            return module
    raise KeyError(f"env.id: unknown env {env_id!r}; known: {', '.join(known_ids())}")


def make(env_id: str, **kwargs) -> GoalEnv:
    """Build an env; kwargs are the family's parameters (episode_length, backend, ...)."""
    module = importlib.import_module(family_of(env_id))
    return module.make(env_id, **kwargs)
