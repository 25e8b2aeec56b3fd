"""The arm's physics: one shared model, Brax's MJX pipeline, actions -> servo targets.

Why these choices:

* One model, built once per process (`arm_model()`), for every task id. Jitted programs
  close over the model's arrays as constants, so identical arrays give identical
  programs: an env step compiled for one cube task is found in the persistent
  compilation cache by the others, and `ArmEnv.with_task` lets one jitted program take
  the task as an argument and serve all six ids.
* Physics is `brax.mjx.pipeline.step` (MJX through Brax, as released). Between steps an
  env keeps only what carries over (`ArmPhysics`: qpos, qvel, the solver's warm start,
  mocap positions); each step rebuilds the full Brax-MJX state from a template made once
  on the host (MuJoCo C `mj_forward` -> `mjx.put_data` -> Brax state), because
  `mjx.step` recomputes every derived quantity from those anyway. This keeps the env
  state small (it is vmapped, selected on auto-reset and checkpointed with the training
  state; the full Brax-MJX state is ~160x larger and holds zero-size arrays orbax refuses to
  save), and `reset` needs no physics at all: Brax's `pipeline.init` runs a full
  `mjx.forward`, which would make every task's reset a separate 20-40 s compile on a CPU.
* Actions are absolute position targets for joints 1, 2 and 4 (yaw, shoulder, elbow),
  scaled from [-1, 1] to a sub-range of the Panda's limits that keeps the hand over the
  table, and one gripper command (-1 closed, +1 open 8 cm). Joint 6 is driven too but
  not by the policy: its target q2 - q4 keeps the hand pointing straight down, which is
  what top-down pushing and picking need and removes a degree of freedom the agent
  would otherwise have to learn to hold still. Joints 3, 5 and 7 are locked in the model.
* A control step is FRAME_SKIP substeps of TIMESTEP: 5 x 10 ms = 0.05 s.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.base import Motion, Transform
from brax.io import mjcf as brax_mjcf
from brax.mjx import base as brax_mjx_base
from brax.mjx import pipeline
from flax import struct
from mujoco import mjx

from envs.manipulation_mjcf import (
    CUBE_HALF,
    DRIVEN_JOINTS,
    FINGER_JOINTS,
    PANDA_FINGER_TRAVEL,
    PANDA_JOINT_LIMITS,
    TABLE_CENTER,
    TABLE_HALF,
    TIMESTEP,
    arm_mjcf,
)

FRAME_SKIP = 5
CONTROL_DT = FRAME_SKIP * TIMESTEP

# Policy-driven joint targets: action -1 -> low, +1 -> high (radians). Inside the Panda's
# limits; chosen so the tool centre point covers x 0.3-0.75 m, z 0-0.35 m of the table.
DRIVEN_RANGES = {
    "joint1": (-1.0, 1.0),
    "joint2": (-0.8, 1.1),
    "joint4": (-3.05, -1.1),
}
JOINT6_LIMITS = PANDA_JOINT_LIMITS[5]
ACTION_SIZE = len(DRIVEN_RANGES) + 1  # + gripper

# State layout (indices into the state part of the observation).
STATE_LAYOUT = {
    "cube_pos": slice(0, 3),
    "cube_quat": slice(3, 7),
    "tcp_pos": slice(7, 10),
    "arm_q": slice(10, 14),  # joints 1, 2, 4, 6
    "gripper_opening": slice(14, 15),  # gap between the pads, 0 .. 0.08 m
    "cube_linvel": slice(15, 18),
    "cube_angvel": slice(18, 21),
    "arm_qd": slice(21, 25),
    "gripper_opening_rate": slice(25, 26),
}
STATE_DIM = 26


@struct.dataclass
class ArmPhysics:
    """EnvState.physics: the part of the MJX state that carries over between steps."""

    qpos: jax.Array  # (nq,): joints 1, 2, 4, 6, two fingers, the cube's free joint
    qvel: jax.Array  # (nv,)
    qacc_warmstart: jax.Array  # (nv,): the constraint solver's warm start
    mocap_pos: jax.Array  # (nmocap, 3): the bins and the goal marker


@dataclasses.dataclass(frozen=True, eq=False)
class ArmModel:
    """The compiled MuJoCo model, its Brax system, and where things live in qpos/qvel."""

    mj: mujoco.MjModel
    sys: object  # brax.base.System
    template: brax_mjx_base.State  # full Brax-MJX state at the home pose (made on the host)
    home: ArmPhysics  # the same, as carried between steps
    home_qpos: np.ndarray
    home_tcp: np.ndarray  # tool centre point at the home pose
    arm_qpos: np.ndarray  # qpos addresses of joints 1, 2, 4, 6
    arm_qvel: np.ndarray
    finger_qpos: np.ndarray
    finger_qvel: np.ndarray
    cube_qpos: int  # free joint: 3 position + 4 quaternion
    cube_qvel: int  # free joint: 3 linear + 3 angular
    tcp_site: int
    bins_mocap: int
    goal_mocap: int


def _driven_mid() -> np.ndarray:
    return np.array([(lo + hi) / 2 for lo, hi in DRIVEN_RANGES.values()])


def action_to_ctrl(action: jax.Array) -> jax.Array:
    """[-1, 1]^4 -> position targets (joint1, joint2, joint4, joint6, finger, finger)."""
    a = jnp.clip(action, -1.0, 1.0)
    lo = jnp.array([r[0] for r in DRIVEN_RANGES.values()])
    hi = jnp.array([r[1] for r in DRIVEN_RANGES.values()])
    q1, q2, q4 = lo + (a[:3] + 1.0) * 0.5 * (hi - lo)
    q6 = jnp.clip(q2 - q4, JOINT6_LIMITS[0], JOINT6_LIMITS[1])  # hand points down
    finger = (a[3] + 1.0) * 0.5 * PANDA_FINGER_TRAVEL
    return jnp.stack([q1, q2, q4, q6, finger, finger])


def _home_joint_targets() -> np.ndarray:
    q1, q2, q4 = _driven_mid()
    return np.array([q1, q2, q4, float(np.clip(q2 - q4, *JOINT6_LIMITS))])


def _brax_state(sys, data: mjx.Data) -> brax_mjx_base.State:
    """A Brax MJX state for `data` at rest, laid out exactly as `pipeline.step` returns it."""
    n_links = data.xpos.shape[0] - 1
    x = Transform(pos=data.xpos[1:], rot=data.xquat[1:])
    xd = Motion(vel=jnp.zeros((n_links, 3)), ang=jnp.zeros((n_links, 3)))
    contact = pipeline._reformat_contact(sys, data._impl.contact)  # pylint: disable=protected-access
    fields = dict(data.__dict__)
    fields["contact"] = contact
    return brax_mjx_base.State(q=data.qpos, qd=data.qvel, x=x, xd=xd, **fields)


@functools.lru_cache(maxsize=1)
def arm_model() -> ArmModel:
    """Build (once per process) the model every arm task shares."""
    mj = mujoco.MjModel.from_xml_string(arm_mjcf())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Brax's "not actively maintained" notice
        sys = brax_mjcf.load_model(mj)

    def qadr(name):
        return int(mj.jnt_qposadr[mj.joint(name).id])

    def vadr(name):
        return int(mj.jnt_dofadr[mj.joint(name).id])

    arm, fingers = DRIVEN_JOINTS, FINGER_JOINTS
    home = mj.qpos0.copy()
    home[[qadr(j) for j in arm]] = _home_joint_targets()
    home[[qadr(f) for f in fingers]] = PANDA_FINGER_TRAVEL
    data = mujoco.MjData(mj)
    data.qpos[:] = home
    data.ctrl[:] = np.concatenate([_home_joint_targets(), [PANDA_FINGER_TRAVEL] * 2])
    mujoco.mj_forward(mj, data)
    tcp_site = mj.site("tcp").id
    template = _brax_state(sys, mjx.put_data(mj, data))
    template = jax.tree.map(jnp.asarray, template)
    return ArmModel(
        mj=mj,
        sys=sys,
        template=template,
        home=_carried(template),
        home_qpos=home,
        home_tcp=data.site_xpos[tcp_site].copy(),
        arm_qpos=np.array([qadr(j) for j in arm]),
        arm_qvel=np.array([vadr(j) for j in arm]),
        finger_qpos=np.array([qadr(f) for f in fingers]),
        finger_qvel=np.array([vadr(f) for f in fingers]),
        cube_qpos=qadr("cube"),
        cube_qvel=vadr("cube"),
        tcp_site=tcp_site,
        bins_mocap=int(mj.body_mocapid[mj.body("bins").id]),
        goal_mocap=int(mj.body_mocapid[mj.body("goal").id]),
    )


def _carried(ps: brax_mjx_base.State) -> ArmPhysics:
    return ArmPhysics(qpos=ps.qpos, qvel=ps.qvel, qacc_warmstart=ps.qacc_warmstart, mocap_pos=ps.mocap_pos)


def simulate(model: ArmModel, physics: ArmPhysics, ctrl: jax.Array) -> tuple[ArmPhysics, jax.Array]:
    """One control step: FRAME_SKIP pipeline substeps with the same servo targets.
    Returns the carried state and the tool centre point's position after the step."""
    ps = model.template.replace(
        qpos=physics.qpos,
        q=physics.qpos,
        qvel=physics.qvel,
        qd=physics.qvel,
        qacc_warmstart=physics.qacc_warmstart,
        mocap_pos=physics.mocap_pos,
    )

    def substep(s, _):
        return pipeline.step(model.sys, s, ctrl), None

    ps = jax.lax.scan(substep, ps, None, length=FRAME_SKIP)[0]
    return _carried(ps), ps.site_xpos[model.tcp_site]


def state_vector(model: ArmModel, ps: ArmPhysics, tcp: jax.Array) -> jax.Array:
    """The STATE_LAYOUT vector (`tcp` is passed in: the carried state holds no kinematics)."""
    c, v = model.cube_qpos, model.cube_qvel
    fingers_q = ps.qpos[model.finger_qpos]
    fingers_qd = ps.qvel[model.finger_qvel]
    return jnp.concatenate(
        [
            ps.qpos[c : c + 3],
            ps.qpos[c + 3 : c + 7],
            tcp,
            ps.qpos[model.arm_qpos],
            jnp.sum(fingers_q, keepdims=True),
            ps.qvel[v : v + 3],
            ps.qvel[v + 3 : v + 6],
            ps.qvel[model.arm_qvel],
            jnp.sum(fingers_qd, keepdims=True),
        ]
    )


def cube_off_table(cube_pos: jax.Array) -> jax.Array:
    """1.0 once the cube's centre has left the table top (or sunk below it)."""
    off_x = jnp.abs(cube_pos[0] - TABLE_CENTER[0]) > TABLE_HALF[0]
    off_y = jnp.abs(cube_pos[1] - TABLE_CENTER[1]) > TABLE_HALF[1]
    sunk = cube_pos[2] < -CUBE_HALF
    return (off_x | off_y | sunk).astype(jnp.float32)


# -- host-side helpers: inverse kinematics for scripted motions (tests, demos) -----------


def _planar_tcp(model: ArmModel, q2: float, q4: float) -> np.ndarray:
    data = mujoco.MjData(model.mj)
    data.qpos[:] = model.home_qpos
    data.qpos[model.arm_qpos] = [0.0, q2, q4, np.clip(q2 - q4, *JOINT6_LIMITS)]
    mujoco.mj_kinematics(model.mj, data)
    p = data.site_xpos[model.tcp_site]
    return np.array([p[0], p[2]])  # (radius, height) in the arm's plane at yaw 0


def tcp_action(xyz, gripper: float = 1.0) -> np.ndarray:
    """The action whose servo targets put the tool centre point at xyz (host-side IK).

    With joints 3, 5, 7 locked and the hand held vertical the arm is planar: joint 1 is
    the azimuth of xyz, and (joint 2, joint 4) solve a 2-D problem by Newton's method.
    Targets outside DRIVEN_RANGES are clipped, so far points are only approached.
    """
    model = arm_model()
    x, y, z = (float(v) for v in xyz)
    target = np.array([math.hypot(x, y), z])
    q = _driven_mid()[1:].copy()
    for _ in range(50):
        err = target - _planar_tcp(model, *q)
        if np.linalg.norm(err) < 1e-6:
            break
        jac = np.zeros((2, 2))
        for k in range(2):
            dq = np.zeros(2)
            dq[k] = 1e-5
            jac[:, k] = (_planar_tcp(model, *(q + dq)) - _planar_tcp(model, *q)) / 1e-5
        q = q + np.linalg.lstsq(jac, err, rcond=None)[0]
    joints = np.array([math.atan2(y, x), q[0], q[1]])
    lo = np.array([r[0] for r in DRIVEN_RANGES.values()])
    hi = np.array([r[1] for r in DRIVEN_RANGES.values()])
    arm = np.clip(2.0 * (joints - lo) / (hi - lo) - 1.0, -1.0, 1.0)
    return np.concatenate([arm, [gripper]]).astype(np.float32)
