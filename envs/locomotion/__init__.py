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

# Light on purpose: the ids are data (ids.py), so the registry knows them without Brax.
from envs.locomotion.ids import ENV_IDS, EVAL_IDS, TASKS, TRAINING_IDS

__all__ = ["ENV_IDS", "EVAL_IDS", "TASKS", "TRAINING_IDS", "make"]


def make(env_id: str, **kwargs):
    """Build a locomotion env (a `LocomotionEnv`); keyword arguments are the env parameters
    of envs/locomotion/params.py that apply to this id (backend, episode_length, ...)."""
    # Brax takes seconds to import, and listing the ids must not need it.
    from envs.locomotion.build import build  # lazy: Brax is slow to import

    return build(env_id, **kwargs)
