"""The arm tasks as data: where the cube starts, where goals lie, where the bins stand.

Every task runs on the same model and the same compiled physics step; a task only
changes what `reset` samples (and which state coordinates the goal refers to). That is
why the bins are a mocap body: push tasks park them out of the way, bin-picking puts
them on the table, and neither needs a different XML. `TaskData` holds a task as arrays
of one shape for all ids, so a program jitted with the task as an argument
(`env.with_task(task)`) serves all six ids.

Coordinates are world metres: the arm's base is at the origin, the table top is z = 0,
the cube (4 cm) rests at z = 0.02. All boxes are (low, high) corners.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs.manipulation_mjcf import CUBE_HALF, SOURCE_BIN_OFFSET, TARGET_BIN_OFFSET

REST_Z = CUBE_HALF  # height of the cube's centre when it lies on the table or a bin floor
BINS_ON_TABLE = (0.5, 0.0, 0.0)  # the bins' mocap position in bin-picking tasks
BINS_PARKED = (-5.0, 0.0, -1.0)  # far from anything the cube can reach
CUBE_PARKED = (0.9, 0.5, REST_Z)  # reach: on the table, beyond the arm's reach (r > 1 m)


@dataclasses.dataclass(frozen=True)
class ArmTask:
    """What `reset` samples for one task id.

    goal        "cube": goal = cube position; "tcp": goal = tool-centre-point position.
    cube_low/high   the cube's start (x, y); z is REST_Z.
    goal_low/high   (x, y, z) box for the goal point; with goal_relative_to_cube the x, y
                    parts are offsets from the cube's start.
    goal_min_dist   goals at least this far from the start's achieved goal (drawn by
                    picking the first of GOAL_CANDIDATES box samples that is), so no
                    episode starts already solved.
    bins        the bins' mocap position.
    """

    goal: str
    cube_low: tuple[float, float]
    cube_high: tuple[float, float]
    goal_low: tuple[float, float, float]
    goal_high: tuple[float, float, float]
    bins: tuple[float, float, float] = BINS_PARKED
    goal_relative_to_cube: bool = False
    goal_min_dist: float = 0.0


GOAL_CANDIDATES = 32


@struct.dataclass
class TaskData:
    """An ArmTask as arrays of fixed shapes: every task can be passed to one jitted program."""

    cube_low: jax.Array  # (2,)
    cube_high: jax.Array  # (2,)
    goal_low: jax.Array  # (3,)
    goal_high: jax.Array  # (3,)
    goal_relative_to_cube: jax.Array  # () 1.0: the goal's x, y are offsets from the cube's start
    goal_min_dist: jax.Array  # ()
    bins: jax.Array  # (3,) the bins' mocap position
    goal_index: jax.Array  # (3,) int32: state[goal_index] is the achieved goal


def task_data(task: ArmTask, goal_index: tuple[int, ...]) -> TaskData:
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return TaskData(
        cube_low=f32(task.cube_low),
        cube_high=f32(task.cube_high),
        goal_low=f32(task.goal_low),
        goal_high=f32(task.goal_high),
        goal_relative_to_cube=f32(float(task.goal_relative_to_cube)),
        goal_min_dist=f32(task.goal_min_dist),
        bins=f32(task.bins),
        goal_index=jnp.asarray(goal_index, jnp.int32),
    )


def _around(centre, half: float, z=(REST_Z, REST_Z)):
    """(low, high) of a square of half-width `half` around centre (x, y), with a z range."""
    x, y = centre
    return (x - half, y - half, z[0]), (x + half, y + half, z[1])


def _bin_centre(offset) -> tuple[float, float]:
    return (BINS_ON_TABLE[0] + offset[0], BINS_ON_TABLE[1] + offset[1])


_SOURCE = _bin_centre(SOURCE_BIN_OFFSET)
_TARGET = _bin_centre(TARGET_BIN_OFFSET)
# A bin is 0.2 m wide inside; the cube's centre stays 3 cm from the walls: +-0.07.
_BIN_FREE = 0.07
# Success radius is 0.1 m: goals keep 12 cm from the start, so no episode starts solved.
_AWAY = 0.12


def _binpick(spread: float) -> ArmTask:
    src_lo, src_hi = _around(_SOURCE, spread)
    goal_lo, goal_hi = _around(_TARGET, spread)
    return ArmTask(
        goal="cube",
        cube_low=src_lo[:2],
        cube_high=src_hi[:2],
        goal_low=goal_lo,
        goal_high=goal_hi,
        bins=BINS_ON_TABLE,
        goal_min_dist=_AWAY,  # a cube by the shared wall is 8 cm from a goal just across it
    )


TASKS: dict[str, ArmTask] = {
    # Move the tool centre point to a point in the air above the table; the cube is parked.
    "arm_reach": ArmTask(
        goal="tcp",
        cube_low=CUBE_PARKED[:2],
        cube_high=CUBE_PARKED[:2],
        goal_low=(0.35, -0.3, 0.05),
        goal_high=(0.7, 0.3, 0.35),
        goal_min_dist=_AWAY,
    ),
    # Push the cube along the table: easy = a 10 cm start patch, goals 12-25 cm away.
    "arm_push_easy": ArmTask(
        goal="cube",
        cube_low=(0.5, -0.05),
        cube_high=(0.6, 0.05),
        goal_low=(0.45, -0.2, REST_Z),
        goal_high=(0.65, 0.2, REST_Z),
        goal_min_dist=_AWAY,
    ),
    # Hard = starts and goals anywhere on the part of the table the fingers can push from
    # every side (35 x 60 cm).
    "arm_push_hard": ArmTask(
        goal="cube",
        cube_low=(0.35, -0.3),
        cube_high=(0.7, 0.3),
        goal_low=(0.35, -0.3, REST_Z),
        goal_high=(0.7, 0.3, REST_Z),
        goal_min_dist=_AWAY,
    ),
    # Lift the cube over the shared wall from the source bin (-y) into the target bin (+y).
    "arm_binpick_easy": _binpick(spread=0.02),
    "arm_binpick_hard": _binpick(spread=_BIN_FREE),
    # Lift the cube to 13-25 cm above the table, near where it started, and hold it there:
    # the cube can only stay off the table between the fingertips, so time at goal = time
    # grasped; 13 cm keeps a cube lying under its goal outside the 10 cm radius.
    # (A 3-D cube goal like the other tasks, so all six ids share one compiled step.)
    "arm_grasp": ArmTask(
        goal="cube",
        cube_low=(0.5, -0.05),
        cube_high=(0.6, 0.05),
        goal_low=(-0.03, -0.03, 0.13),
        goal_high=(0.03, 0.03, 0.25),
        goal_relative_to_cube=True,
    ),
}
