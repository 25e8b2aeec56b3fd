"""Goal-conditioned environments: `envs.make(env_id)` builds one (see envs/registry.py)."""

from envs.base import EnvSpec, EnvState, GoalEnv
from envs.registry import known_ids, make
from envs.stitching import resolve_id

__all__ = ["EnvSpec", "EnvState", "GoalEnv", "known_ids", "make", "resolve_id"]
