"""The arm's physics: the compiled scene, MJX stepping, the paper's action map, readouts.

* One compiled model per scene variant (`arm_model(scene)`, cached): the push tasks
  share one, as do all their jitted programs; reach, grasp and each bin-picking task
  have their own, because the paper's XMLs differ there (fingers, fingertips, walls).
* A control step is FRAME_SKIP = 25 `mjx.step`s of 2 ms with the same controls, as
  Brax's `PipelineEnv.pipeline_step` runs the paper's envs (`sequential_step`: the
  same step with its two LAPACK factorisations kept in sequence). Between steps an env keeps
  only what carries over (`ArmPhysics`: qpos, qvel, the solver's warm start and the goal
  marker's mocap position); `mjx.step` recomputes everything else from those.
* Readouts follow Brax's MJX pipeline exactly: body positions are `xpos` of the last
  substep's forward pass (before its integration) and a body's linear velocity is
  `cvel` moved from the subtree centre of mass to the body's origin.
* Actions (the paper's `_convert_action_to_actuator_input_joint_angle`, absolute mode):
  entries 0-3 in [-1, 1] are joint 1, 2, 4, 6 targets over JOINT_TARGET_RANGE, joints
  3 and 5 are held at 0, joint 7 at 1.4487; entry 4 is the gripper: > 0 -> finger ctrl
  0 (closed), else 255 (open).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from envs.manipulation.mjcf import FRAME_SKIP, SceneSpec, panda_mjcf

KNOWN_MJX = "3.17.0"  # the mujoco-mjx (constraints.txt) whose data._impl.contact this reads (mjx_contacts)

# (low, high) target of each of the 7 arm joints; low == high: held fixed.
JOINT_TARGET_RANGE = (
    (0.3491, 2.7925),
    (0.0, 1.48353),
    (0.0, 0.0),
    (-3.0718, -0.0698),
    (0.0, 0.0),
    (2.3562, 3.7525),
    (1.4487, 1.4487),
)
ACTION_JOINTS = (0, 1, 3, 5)  # joints 1, 2, 4, 6
TARGET_LOW = np.array([r[0] for r in JOINT_TARGET_RANGE])
TARGET_HIGH = np.array([r[1] for r in JOINT_TARGET_RANGE])
GRIPPER_CLOSED, GRIPPER_OPEN = 0.0, 255.0
ARM_START = (1.571, 0.742, 0.0, -1.571, 0.0, 3.054, 1.449)
FINGER_START = 0.04


@struct.dataclass
class ArmPhysics:
    """EnvState.physics: what carries over between control steps."""

    qpos: jax.Array
    qvel: jax.Array
    qacc_warmstart: jax.Array  # the constraint solver's warm start
    mocap_pos: jax.Array  # (1, 3): the goal marker


@dataclasses.dataclass(frozen=True, eq=False)
class ArmModel:
    """A compiled scene variant and where things live in it."""

    scene: SceneSpec
    mj: mujoco.MjModel
    sys: mjx.Model
    template: mjx.Data  # zeros; every step fills in the carried fields
    arm_qpos: np.ndarray  # qpos addresses of joints 1-7
    finger_qpos: np.ndarray  # () or the two finger slides
    cube_qpos: int  # -1 without a cube
    cube_qvel: int
    link7: int  # body ids
    fingers: tuple  # left, right finger bodies ((), for reach)
    fingertips: tuple  # left, right fingertip bodies (arm_grasp)
    root: np.ndarray  # body_rootid
    home_qpos: np.ndarray  # the paper's start pose (cube, if any, at its XML position)
    home: ArmPhysics

    @property
    def ctrl_size(self) -> int:
        return int(self.mj.nu)


@functools.lru_cache(maxsize=None)
def arm_model(scene: SceneSpec) -> ArmModel:
    """Compile (once per process and variant) one scene."""
    mj = mujoco.MjModel.from_xml_string(panda_mjcf(scene))

    def qadr(name):
        return int(mj.jnt_qposadr[mj.joint(name).id])

    def body(name):
        return int(mj.body(name).id)

    arm = np.array([qadr(f"joint{i}") for i in range(1, 8)])
    fingers = np.array([qadr("finger_joint1"), qadr("finger_joint2")]) if scene.fingers else np.zeros(0, int)
    cube_q = int(mj.jnt_qposadr[mj.body("cube").jntadr[0]]) if scene.cube else -1
    cube_v = int(mj.jnt_dofadr[mj.body("cube").jntadr[0]]) if scene.cube else -1
    home = mj.qpos0.copy()
    home[arm] = ARM_START
    home[fingers] = FINGER_START
    sys = mjx.put_model(mj)
    template = mjx.make_data(mj)
    start = ArmPhysics(
        qpos=jnp.asarray(home, jnp.float32),
        qvel=jnp.zeros(mj.nv, jnp.float32),
        qacc_warmstart=jnp.zeros(mj.nv, jnp.float32),
        mocap_pos=jnp.zeros((mj.nmocap, 3), jnp.float32),
    )
    return ArmModel(
        scene=scene, mj=mj, sys=sys, template=template,
        arm_qpos=arm, finger_qpos=fingers, cube_qpos=cube_q, cube_qvel=cube_v,
        link7=body("link7"),
        fingers=(body("left_finger"), body("right_finger")) if scene.fingers else (),
        fingertips=(body("left_fingertip"), body("right_fingertip")) if scene.fingertips else (),
        root=np.asarray(mj.body_rootid), home_qpos=home, home=start,
    )


def action_to_ctrl(action: jax.Array, ctrl_size: int) -> jax.Array:
    """The paper's map of a [-1, 1] action to actuator controls (7 arm + 2 fingers)."""
    a = jnp.zeros(7).at[jnp.array(ACTION_JOINTS)].set(action[: len(ACTION_JOINTS)])
    arm = jnp.asarray((TARGET_LOW + TARGET_HIGH) / 2) + a * jnp.asarray((TARGET_HIGH - TARGET_LOW) / 2)
    if ctrl_size == 7:  # reach: no fingers
        return arm
    grip = jnp.where(action[len(ACTION_JOINTS)] > 0, GRIPPER_CLOSED, GRIPPER_OPEN)
    return jnp.concatenate([arm, jnp.stack([grip, grip])])


def joint_action(q: np.ndarray) -> np.ndarray:
    """The arm part of the action that targets joints 1, 2, 4, 6 at q (4,) (host side)."""
    lo, hi = TARGET_LOW[list(ACTION_JOINTS)], TARGET_HIGH[list(ACTION_JOINTS)]
    return np.clip((2.0 * np.asarray(q) - (lo + hi)) / (hi - lo), -1.0, 1.0)


def sequential_step(sys: mjx.Model, data: mjx.Data) -> mjx.Data:
    """`mjx.step` for the implicit-fast integrator (forward dynamics, then `mjx.implicit`),
    with an optimisation barrier between the two: the same operations on the same values,
    but the integrator's Cholesky factorisation of M - dt * D can no longer be scheduled
    beside the Newton solver's (it needs only M and D, which exist before the solver
    runs). With the mass matrix on MJX's sparse (JAX) route, at most one batched LAPACK
    call then runs at a time: two at once deadlock jaxlib's CPU Cholesky on a 2-thread
    pool (docs/envs_manipulation.md, "The CPU hang")."""
    data = mjx.forward(sys, data)
    data = jax.lax.optimization_barrier(data)
    return mjx.implicit(sys, data)


def simulate(model: ArmModel, physics: ArmPhysics, ctrl: jax.Array) -> tuple[ArmPhysics, mjx.Data]:
    """One control step: FRAME_SKIP `mjx.step`s; returns the carried state and the last
    substep's data (its kinematics are what the paper's observation reads)."""
    data = model.template.replace(
        qpos=physics.qpos, qvel=physics.qvel, qacc_warmstart=physics.qacc_warmstart,
        mocap_pos=physics.mocap_pos, ctrl=ctrl,
    )

    def substep(d, _):
        return sequential_step(model.sys, d), None

    data = jax.lax.scan(substep, data, None, length=FRAME_SKIP)[0]
    return physics.replace(qpos=data.qpos, qvel=data.qvel, qacc_warmstart=data.qacc_warmstart), data


def body_velocity(model: ArmModel, data, body: int) -> jax.Array:
    """Linear velocity of a body's origin, as Brax's MJX pipeline computes `xd.vel`."""
    cvel = data.cvel[body]
    offset = data.xpos[body] - data.subtree_com[model.root[body]]
    return cvel[3:] - jnp.cross(offset, cvel[:3])


@dataclasses.dataclass(frozen=True)
class Kinematics:
    """What the observation reads from a forward pass (or the host's at the start pose)."""

    xpos: jax.Array  # (nbody, 3)
    link7_vel: jax.Array  # (3,)


def kinematics(model: ArmModel, data) -> Kinematics:
    return Kinematics(xpos=data.xpos, link7_vel=body_velocity(model, data, model.link7))


@functools.lru_cache(maxsize=None)
def home_kinematics(scene: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """Body positions at the start pose (at rest) from MuJoCo C: the reset observation.
    The arm's start is fixed, and the cube moves no arm body."""
    model = arm_model(scene)
    data = mujoco.MjData(model.mj)
    data.qpos[:] = model.home_qpos
    mujoco.mj_forward(model.mj, data)
    return np.array(data.xpos, np.float32), np.zeros(3, np.float32)


def contact_geom_pairs(model: ArmModel, data) -> tuple[jax.Array, jax.Array]:
    """(geom pairs (ncon, 2), active (ncon,)) of an MJX data's contacts: active when the
    contact is within reach (dist <= 0)."""
    con = mjx_contacts(data)
    return con.geom, con.dist <= 0.0


def mjx_contacts(data):
    """An MJX data's contacts: `data._impl.contact`, a private internal of MJX (JAX
    backend; older MJX had `data.contact`). An MJX that moved it fails here (at trace
    time) with one line naming the version found and KNOWN_MJX, the version known to
    work (tests/test_private_internals.py)."""
    con = getattr(getattr(data, "_impl", data), "contact", None)
    if con is None or not (hasattr(con, "geom") and hasattr(con, "dist")):
        raise AttributeError(
            f"envs.manipulation: mujoco-mjx {importlib.metadata.version('mujoco-mjx')} has no data._impl.contact "
            f"with geom and dist (a private internal; known to work: mujoco-mjx {KNOWN_MJX}, as pinned in "
            "constraints.txt)"
        )
    return con
