"""Building a locomotion env from its id (the heavy half of envs.locomotion: Brax)."""

from __future__ import annotations

import functools

from envs.base import EnvSpec
from envs.locomotion.env import LocomotionEnv
from envs.locomotion.ids import ENV_IDS, EVAL_IDS, TASKS
from envs.locomotion.params import resolve
from envs.locomotion.scene import (
    PUSH_LAYOUT,
    SUCCESS_RADIUS,
    SUCCESS_RADIUS_EASY,
    get_scene,
    maze_task,
    open_task,
)
from envs.maze_layouts import MazeLayout, robot_layout
from envs.stitching import eval_distances, pair_table


def _resolve(env_id: str) -> tuple[str, str, MazeLayout | None]:
    """(robot, kind, maze layout) of an id, `_eval` ids mapped to the robot's eval layouts."""
    base = env_id[: -len("_eval")] if env_id in EVAL_IDS.values() else env_id
    robot, kind, maze = TASKS[base]
    if maze == "ant_push":
        return robot, kind, PUSH_LAYOUT
    if maze is None:
        return robot, kind, None
    return robot, kind, robot_layout(robot, maze + ("_eval" if base != env_id else ""))


def build(env_id: str, **kwargs) -> LocomotionEnv:
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
    eval_env_params = None
    if p.get("pair_distances") or p.get("eval_pair_distances"):
        if p["pair_distances"]:
            task = task.with_pairs(*pair_table(maze, p["pair_distances"]), scene.robot.cell_size)
        far = eval_distances(maze, p["pair_distances"], p["eval_pair_distances"])
        if far != tuple(p["pair_distances"]):  # (an eval env is its own eval env)
            eval_env_params = {**kwargs, "pair_distances": far, "eval_pair_distances": far}
    spec = EnvSpec(
        env_id=env_id,
        state_dim=scene.state_dim,
        goal_indices=scene.goal_indices,
        action_size=scene.action_size,
        episode_length=p["episode_length"],
        success_radius=SUCCESS_RADIUS,
        success_radius_easy=SUCCESS_RADIUS_EASY,
    )
    # stitching: the eval env draws the far pairs
    evaluation = None if eval_env_params is None else functools.partial(build, env_id, **eval_env_params)
    return LocomotionEnv(spec, scene, task, maze, evaluation)
