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

from envs.params import build, param

BACKENDS = ("spring", "generalized", "positional", "mjx")


@dataclasses.dataclass(frozen=True)
class LocomotionParams:
    """`env.params.*` of the locomotion ids (checked by envs.params.build); `APPLIES` says
    which ids have which."""

    backend: str = param("spring", choices=BACKENDS, doc="Brax physics pipeline")
    # The spec's truncation length; truncation itself is envs.wrappers.TrainingEnv's job.
    episode_length: int = param(1000, low=1, key="env.episode_length", doc="steps per episode")
    goal_jitter: float = param(0.0, low=0, doc="goals uniform within +- goal_jitter x cell of a goal cell's centre")
    goal_in_state: bool = param(True, doc="the humanoid's goal is a body of its model, inside the state")
    xml_timestep: bool = param(True, doc="the open humanoid's 0.03 s control step (false: 0.015 s)")
    pair_distances: tuple[int, ...] = param((), low=1, doc="stitching: start-goal pairs this many corridor cells apart (envs/stitching.py); empty: the maze's start and goals")
    eval_pair_distances: tuple[int, ...] = param((), low=1, doc="stitching: the pairs the eval env draws; empty: every distance beyond the training ones")


# (robot, task kind) -> whether an id has the parameter; a parameter not listed: every id
APPLIES = {
    "goal_jitter": lambda robot, kind: kind in ("maze", "push"),
    "goal_in_state": lambda robot, kind: robot == "humanoid",
    "xml_timestep": lambda robot, kind: robot == "humanoid" and kind == "open",
    "pair_distances": lambda robot, kind: kind == "maze",
    "eval_pair_distances": lambda robot, kind: kind == "maze",
}


def names_for(robot: str, kind: str) -> list[str]:
    return [f.name for f in dataclasses.fields(LocomotionParams) if APPLIES.get(f.name, lambda r, k: True)(robot, kind)]


def resolve(env_id: str, robot: str, kind: str, kwargs: dict) -> dict:
    """Every parameter of this id, from `kwargs` or its default; one-line errors."""
    allowed = names_for(robot, kind)
    for key in kwargs:
        if key not in allowed:
            raise KeyError(f"env.params.{key}: not a parameter of {env_id}; allowed: {', '.join(allowed)}")
    values = build(LocomotionParams, env_id, kwargs)
    return {name: getattr(values, name) for name in allowed}
