"""Host-side inverse kinematics for scripted arm motions (tests, demos): the action whose
joint targets bring the finger pads' centre to a point.

The paper's action sets absolute targets for joints 1, 2, 4, 6 (3 and 5 at 0, 7 at
1.4487). Its servos do not settle at their targets: actuators 3-7 have a gain below
their position feedback (2000 vs 3500, 1000 vs 2000), so joint j rests at gain/kp x its
target (joint 4 at 0.571 x, joints 6 and 7 at 0.5 x); the resting poses are what can be
reached. With joints 3 and 5 at 0 the arm is planar: joint 1 is the azimuth, and
(joint 2, 4, 6) are found by a grid search over the resting ranges (preferring a hand
that points down) refined by Gauss-Newton on MuJoCo C's kinematics.
"""

from __future__ import annotations

import functools
import math

import mujoco
import numpy as np

from envs.manipulation.mjcf import FINGER_BOX_POS, FINGER_POS, HAND_POS
from envs.manipulation.physics import (
    ACTION_JOINTS,
    TARGET_HIGH,
    TARGET_LOW,
    ArmModel,
    joint_action,
)

# The pads' centre on link7's axis: hand offset + finger offset + the pad box's centre.
PAD_CENTRE = np.array([0.0, 0.0, HAND_POS[2] + FINGER_POS[2] + FINGER_BOX_POS[2]])
TILT_COST = 0.01  # metres of position error worth a hand pointing sideways
PLANAR = [1, 3, 5]  # joints 2, 4, 6


def pad_centre(model: ArmModel, data: mujoco.MjData) -> np.ndarray:
    b = model.link7
    return data.xpos[b] + data.xmat[b].reshape(3, 3) @ PAD_CENTRE


def rest_ratio(model: ArmModel) -> np.ndarray:
    """Resting angle / target of each arm servo (gain over position feedback)."""
    return model.mj.actuator_gainprm[:7, 0] / -model.mj.actuator_biasprm[:7, 1]


def _rest_range(model: ArmModel) -> tuple[np.ndarray, np.ndarray]:
    r = rest_ratio(model)
    return TARGET_LOW * r, TARGET_HIGH * r


def _planar(model: ArmModel, data: mujoco.MjData, q3: np.ndarray) -> tuple[np.ndarray, float]:
    """((radius, z) of the pads, hand axis z) at joint 1 = 0 for joints 2, 4, 6 = q3."""
    low, high = _rest_range(model)
    q = (low + high) / 2
    q[0] = 0.0
    q[PLANAR] = q3
    data.qpos[model.arm_qpos] = q
    mujoco.mj_kinematics(model.mj, data)
    p = pad_centre(model, data)
    return np.array([p[0], p[2]]), float(data.xmat[model.link7].reshape(3, 3)[2, 2])


@functools.lru_cache(maxsize=8)
def _grid(model: ArmModel):
    data = mujoco.MjData(model.mj)
    data.qpos[:] = model.home_qpos
    low, high = _rest_range(model)
    axes = [np.linspace(low[j], high[j], n) for j, n in zip(PLANAR, (24, 24, 12))]
    qs = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    out = [_planar(model, data, q) for q in qs]
    return qs, np.array([o[0] for o in out]), np.array([o[1] for o in out]), data


def pose_action(model: ArmModel, xyz, gripper: float = -1.0) -> np.ndarray:
    """The action (5-D; 4-D without fingers) whose servos rest with the pads at xyz;
    the gripper entry is passed through (> 0 closed)."""
    x, y, z = (float(v) for v in xyz)
    target = np.array([math.hypot(x, y), z])
    qs, pads, axis_z, data = _grid(model)
    cost = np.linalg.norm(pads - target, axis=1) + TILT_COST * (1.0 + axis_z)
    q = qs[int(np.argmin(cost))].copy()
    low, high = (b[PLANAR] for b in _rest_range(model))
    for _ in range(30):
        err = _planar(model, data, q)[0] - target
        if np.linalg.norm(err) < 1e-6:
            break
        jac = np.empty((2, 3))
        for k in range(3):
            dq = np.zeros(3)
            dq[k] = 1e-6
            jac[:, k] = (_planar(model, data, q + dq)[0] - target - err) / 1e-6
        q = np.clip(q - np.linalg.lstsq(jac, err, rcond=None)[0], low, high)
    rest = np.array([math.atan2(y, x), *q])
    return _with_gripper(model, joint_action(rest / rest_ratio(model)[list(ACTION_JOINTS)]), gripper)


def hold_action(model: ArmModel, gripper: float = -1.0) -> np.ndarray:
    """The action whose targets are the start pose (the arm settles where those targets
    rest, see `rest_ratio`, and then stays there)."""
    q = np.array([model.home_qpos[model.arm_qpos[j]] for j in ACTION_JOINTS])
    return _with_gripper(model, joint_action(q), gripper)


def _with_gripper(model: ArmModel, arm: np.ndarray, gripper: float) -> np.ndarray:
    return (arm if not model.scene.fingers else np.concatenate([arm, [gripper]])).astype(np.float32)
