"""The env parameters of the locomotion family (`env.params` in a config), declared once.

Each parameter has its default, the values it allows, and the ids it applies to. `resolve`
checks a `make(...)` call's keyword arguments against these declarations: an unknown name,
a parameter of another id, or a bad value fails with one line naming `env.params.<key>`.

The defaults are the paper's behaviour (shared PAPER_TASKS.md). Two of them are quirks of
the paper's code that a user may want off:

    goal_in_state    the humanoid's commanded goal is a body of its model (the paper's
                     `target`), so its x, y and its inertia are inside the 268-dim state
                     that the actor and phi(s, a) see, even when the goal is relabelled.
                     false: no target body, a 246-dim state of the humanoid alone.
    xml_timestep     the open humanoid's 0.03 s control step: the paper's code asks for a
                     0.0015 s substep, which brax 0.10.1's spring pipeline ignored, so it
                     integrated with the model's 0.003 s (x 10 substeps). false: 0.0015 s
                     substeps, a 0.015 s control step (as the humanoid mazes have).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

BACKENDS = ("spring", "generalized", "positional", "mjx")


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    default: Any
    allowed: str  # how the error message describes the allowed values
    check: Callable[[Any], bool]
    applies: Callable[[str, str], bool]  # (robot, task kind) -> whether the id has it
    key: str = ""  # where a config sets it; default env.params.<name>

    @property
    def config_key(self) -> str:
        return self.key or f"env.params.{self.name}"


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _non_negative(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _bool(v) -> bool:
    return isinstance(v, bool)


def _every(robot: str, kind: str) -> bool:
    return True


PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("backend", "spring", f"one of {', '.join(BACKENDS)}", lambda v: v in BACKENDS, _every),
    # The spec's truncation length; truncation itself is envs.wrappers.TrainingEnv's job.
    Param("episode_length", 1000, "an integer >= 1", _positive_int, _every, key="env.episode_length"),
    # Goals uniform within +- goal_jitter x cell of a goal cell's centre (0: the centre).
    Param("goal_jitter", 0.0, "a number >= 0", _non_negative, lambda r, k: k in ("maze", "push")),
    Param("goal_in_state", True, "true or false", _bool, lambda r, k: r == "humanoid"),
    Param("xml_timestep", True, "true or false", _bool, lambda r, k: r == "humanoid" and k == "open"),
)}


def names_for(robot: str, kind: str) -> list[str]:
    return [p.name for p in PARAMS.values() if p.applies(robot, kind)]


def resolve(env_id: str, robot: str, kind: str, kwargs: dict) -> dict:
    """Every parameter of this id, from `kwargs` or its default; one-line errors."""
    allowed = names_for(robot, kind)
    for key in kwargs:
        if key not in allowed:
            raise KeyError(
                f"env.params.{key}: not a parameter of {env_id}; allowed: {', '.join(allowed)}"
            )
    values = {}
    for name in allowed:
        p = PARAMS[name]
        value = kwargs.get(name, p.default)
        if not p.check(value):
            raise ValueError(f"{p.config_key}: {value!r} is not allowed; use {p.allowed}")
        values[name] = value
    return values
