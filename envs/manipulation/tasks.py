"""The six arm tasks as data: scene variant, start and goal regions, state layout.

Every number is the paper's (`envs/manipulation/arm_*.py`): a region is a centre and a
half-width ("noise scale") of a uniform draw; the cube starts at z = CUBE_START_Z with
the identity orientation and drops onto the table; the arm always starts at ARM_START.
"""

from __future__ import annotations

import dataclasses

from envs.manipulation.mjcf import BLUE, RED, Bin, SceneSpec

PUSH = "push"  # obs 17: cube xyz, 7 joints, link-7 position and velocity, finger distance
REACH = "reach"  # obs 13: 7 joints, link-7 position and velocity
GRASP = "grasp"  # obs 23: as push, with the two fingertip positions and their distance

STATE_DIM = {PUSH: 17, REACH: 13, GRASP: 23}
# state[goal_indices] is the achieved goal
GOAL_INDICES = {PUSH: (0, 1, 2), REACH: (7, 8, 9), GRASP: tuple(range(16, 23))}
GRASP_OFFSET = 0.0375  # fingertip targets +-x of the cube's centre
GRASP_OPENING = 0.075  # the fingertips' target distance (the cube is 0.06 wide)
# (midpoint-to-cube distance, opening error) below which arm_grasp counts success
GRASP_SUCCESS = {"success": (0.05, 0.02), "success_easy": (0.15, 0.05), "success_hard": (0.02, 0.005)}


@dataclasses.dataclass(frozen=True)
class ArmTask:
    """What one id samples and observes.

    layout          PUSH / REACH / GRASP (state size, goal indices, action size)
    scene           the scene variant (fingers, fingertips, bins, impratio)
    cube_centre, cube_noise   the cube's start x, y: centre + U(-1, 1) * noise
    goal_centre, goal_noise   the goal point: centre + U(-1, 1) * noise per axis
                              (GRASP: the goal follows the cube instead)
    """

    layout: str
    scene: SceneSpec
    cube_centre: tuple = (0.0, 0.0)
    cube_noise: float = 0.0
    goal_centre: tuple = (0.0, 0.0, 0.0)
    goal_noise: tuple = (0.0, 0.0, 0.0)

    @property
    def state_dim(self) -> int:
        return STATE_DIM[self.layout]

    @property
    def goal_indices(self) -> tuple:
        return GOAL_INDICES[self.layout]

    @property
    def action_size(self) -> int:
        return 4 if self.layout == REACH else 5


def _push(cube, goal_xy, noise, half) -> ArmTask:
    """Push: blue start patch and red goal patch (drawn only), goals on the table."""
    floors = (Bin(cube, half, BLUE, floor=True), Bin(goal_xy, half, RED, floor=True))
    return ArmTask(PUSH, SceneSpec(bins=floors), cube, noise, (*goal_xy, 0.03), (noise, noise, 0.0))


def _binpick(centre_x, half, cube_x, noise) -> ArmTask:
    """Bin-pick: from bin A (blue) into bin B (red), walls with contact pairs, impratio 10."""
    bins = (Bin((-centre_x, 0.6), half, BLUE), Bin((centre_x, 0.6), half, RED))
    return ArmTask(PUSH, SceneSpec(bins=bins, impratio=10.0), (cube_x, 0.6), noise, (centre_x, 0.6, 0.03),
                   (noise, noise, 0.0))


TASKS: dict[str, ArmTask] = {
    "arm_reach": ArmTask(
        REACH, SceneSpec(fingers=False, cube=False, bins=(Bin((0.0, 0.5), 0.2, BLUE, floor=True),), marker="sphere"),
        goal_centre=(0.0, 0.5, 0.3), goal_noise=(0.2, 0.2, 0.2),
    ),
    "arm_push_easy": _push((-0.1, 0.6), (0.1, 0.6), 0.1, 0.1),
    "arm_push_hard": _push((-0.25, 0.65), (0.25, 0.65), 0.25, 0.25),
    "arm_binpick_easy": _binpick(0.17, 0.14, -0.15, 0.09),
    "arm_binpick_hard": _binpick(0.3, 0.19, -0.3, 0.15),
    "arm_grasp": ArmTask(
        GRASP, SceneSpec(fingertips=True, bins=(Bin((0.0, 0.6), 0.3, BLUE, floor=True),), marker="fingertips"),
        cube_centre=(0.0, 0.6), cube_noise=0.3,
    ),
}
