"""The locomotion family's ids as data (no Brax): the registry and configs read them cheaply."""

from __future__ import annotations

_ANT_MAZES = ["u_maze", "u2_maze", "u3_maze", "u4_maze", "u5_maze", "big_maze", "hardest_maze"]
_HUMANOID_MAZES = ["u_maze", "big_maze", "hardest_maze"]

# training id -> (robot, task kind, maze layout name or None)
TASKS: dict[str, tuple[str, str, str | None]] = {
    "ant": ("ant", "open", None),
    "ant_ball": ("ant", "ball", None),
    "ant_push": ("ant", "push", "ant_push"),
    "humanoid": ("humanoid", "open", None),
    **{f"ant_{m}": ("ant", "maze", m) for m in _ANT_MAZES},
    **{f"humanoid_{m}": ("humanoid", "maze", m) for m in _HUMANOID_MAZES},
}
TRAINING_IDS = list(TASKS)
EVAL_IDS = {i: f"{i}_eval" for i, (_, kind, _) in TASKS.items() if kind == "maze"}
ENV_IDS = sorted(TRAINING_IDS + list(EVAL_IDS.values()))
