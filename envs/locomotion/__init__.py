"""Goal-conditioned Brax locomotion and navigation: ant, humanoid, their mazes, ant_ball, ant_push.

    env = make("ant_u4_maze", backend="spring", episode_length=1000)

Observation = state followed by the goal. The state starts with the full generalised
position q, so the torso x, y (ant) or x, y, z (humanoid) are state[0:2] / state[0:3]:

    ant, ant mazes   q (15: torso x,y,z, quaternion, 8 hinges) + qd (14)        = 29
    ant_ball         q (15 ant + 7 ball free joint) + qd (14 + 6)               = 42
    ant_push         q (15 ant + 7 block free joint) + qd (14 + 6)              = 42
    humanoid (mazes) q (24 + 2 target) + qd (23 + 2) + per-link inertia (12 x 10)
                     and velocity (12 x 6) + actuator torques (25)              = 268
                     (goal_in_state=false: no target body, 246)

Goal: torso x, y (ant, ant_push, ant mazes), ball x, y (ant_ball), torso x, y, z
(humanoid, z = 1.25). Success within 0.5 of the goal (easy: 2.0). An episode terminates
(done = 1) when the torso height leaves [0.2, 1.0] (ant) or [1.0, 2.0] (humanoid);
truncation at `episode_length` is envs.wrappers.TrainingEnv's job. `_eval` ids use the
paper's evaluation goal cells for that robot (envs/maze_layouts.py). Parameters:
envs/locomotion/params.py. See docs/envs_locomotion.md and docs/paper_fidelity.md.

Modules: params (env parameters), robots (ant, humanoid), mjcf (the model builder),
scene (physics and task data), env (the GoalEnv).
"""

from __future__ import annotations

from envs.base import EnvSpec
from envs.locomotion.env import LocomotionEnv
from envs.locomotion.params import PARAMS, resolve
from envs.locomotion.scene import (
    PUSH_LAYOUT,
    SUCCESS_RADIUS,
    SUCCESS_RADIUS_EASY,
    get_scene,
    maze_task,
    open_task,
)
from envs.maze_layouts import MazeLayout, robot_layout

__all__ = ["ENV_IDS", "EVAL_IDS", "PARAMS", "TRAINING_IDS", "LocomotionEnv", "make"]

_ANT_MAZES = ["u_maze", "u4_maze", "u5_maze", "big_maze", "hardest_maze"]
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


def _resolve(env_id: str) -> tuple[str, str, MazeLayout | None]:
    """(robot, kind, maze layout) of an id, `_eval` ids mapped to the robot's eval layouts."""
    base = env_id[: -len("_eval")] if env_id in EVAL_IDS.values() else env_id
    robot, kind, maze = TASKS[base]
    if maze == "ant_push":
        return robot, kind, PUSH_LAYOUT
    if maze is None:
        return robot, kind, None
    return robot, kind, robot_layout(robot, maze + ("_eval" if base != env_id else ""))


def make(env_id: str, **kwargs) -> LocomotionEnv:
    """Build a locomotion env; keyword arguments are the env parameters of
    envs/locomotion/params.py that apply to this id (backend, episode_length, ...)."""
    if env_id not in ENV_IDS:
        raise KeyError(f"env.id: unknown locomotion env {env_id!r}; known: {', '.join(ENV_IDS)}")
    robot, kind, maze = _resolve(env_id)
    p = resolve(env_id, robot, kind, kwargs)
    scene = get_scene(robot, kind, p["backend"], target=p.get("goal_in_state", False),
                      xml_timestep=p.get("xml_timestep", False))
    if maze is None:
        task = open_task()
    else:
        task = maze_task(maze, scene.robot.cell_size, p["goal_jitter"])
    spec = EnvSpec(
        env_id=env_id,
        state_dim=scene.state_dim,
        goal_indices=scene.goal_indices,
        action_size=scene.action_size,
        episode_length=p["episode_length"],
        success_radius=SUCCESS_RADIUS,
        success_radius_easy=SUCCESS_RADIUS_EASY,
    )
    return LocomotionEnv(spec, scene, task, maze)
