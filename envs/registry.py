"""make(env_id) -> GoalEnv for every task family, each family listed once.

A family is a package (`envs.point_maze`, `envs.locomotion`, `envs.manipulation`) whose
`__init__` exposes `ENV_IDS` and `make(env_id, **params)`. The `__init__` is light: the ids
are data and `make` imports the physics (Brax, MJX) only when it builds an env, so an
unknown id is reported, with every known id, without importing Brax or MuJoCo.
"""

from __future__ import annotations

import importlib

from envs.base import GoalEnv
from envs.stitching import resolve_id

FAMILIES = ("envs.point_maze", "envs.locomotion", "envs.manipulation")
DEFAULT_ENV_ID = "point_u_maze"


def ids_of(family: str) -> list[str]:
    """The ids a family registers (its package's ENV_IDS)."""
    return list(importlib.import_module(family).ENV_IDS)


def known_ids() -> list[str]:
    """Every id that `make` accepts."""
    return sorted(i for family in FAMILIES for i in ids_of(family))


def family_of(env_id: str) -> str:
    for family in FAMILIES:
        if env_id in ids_of(family):
            return family
    raise KeyError(f"env.id: unknown env {env_id!r}; known: {', '.join(known_ids())}")


def make(env_id: str, **kwargs) -> GoalEnv:
    """Build an env; kwargs are the family's parameters (episode_length, backend, ...).
    The paper code's stitching ids (`ant_u_maze_gen_1f2f3f`) are aliases of a maze id with
    `pair_distances` (envs/stitching.py)."""
    base, params = resolve_id(env_id)
    for name in params:
        if name in kwargs:
            raise ValueError(f"env.params.{name}: not allowed with env.id {env_id!r}, whose name sets it")
    return importlib.import_module(family_of(base)).make(base, **params, **kwargs)
