"""MJCF of a Panda-like arm, a table, a cube and two bins, generated from public facts.

Why generated here: the suite must not depend on downloaded meshes or copied XML, and
MJX is fastest with few, primitive collision geoms. The arm is built from the Franka
Emika Panda's published kinematics (modified Denavit-Hartenberg parameters, Craig's
convention, lengths in metres):

    joint   a_{i-1}   d_i     alpha_{i-1}
    1       0         0.333   0
    2       0         0       -pi/2
    3       0         0.316   +pi/2
    4       0.0825    0       +pi/2
    5      -0.0825    0.384   -pi/2
    6       0         0       +pi/2
    7       0.088     0       +pi/2
    flange  0         0.107   0        (hand rotated -pi/4 about the flange's z)

and its published joint limits (rad), link masses (kg, rounded) and torque limits (Nm);
fingers slide 0-0.04 m each and the tool centre point sits 0.1034 m past the flange.
A modified-DH row maps to a MuJoCo body as: pos = (a, -sin(alpha) d, cos(alpha) d),
quat = rotation by alpha about x, hinge axis = the body's own z. Link shapes are capsules
between joint origins; the hand is a box, each finger a box with a capsule pad.

All seven links are built, but joints 3, 5 and 7 are locked (LOCKED_JOINTS): the model
has hinges 1, 2, 4, 6 plus the two finger slides, a body tree five levels deep. MJX walks
the tree level by level: with all seven hinges one MJX substep ran ~4x slower on a CPU.

Contacts are listed explicitly as <pair>s (every geom has contype = conaffinity = 0), so
MJX checks only these pairs every substep:

    cube - table            plane / box       4 contacts
    cube - each finger pad  capsule / box     2 + 2
    cube - palm             capsule / box     2
    finger pads - table     plane / capsule   2 + 2
    cube - 5 bin walls      box / box         5 x 4

The table top is an infinite collision plane at z = 0 (cheap plane-box contacts); its
drawn extent (TABLE_HALF around TABLE_CENTER) is where the cube may be: off it counts as
fallen. The bins and the goal marker hang on mocap bodies, so a task moves them through
`data.mocap_pos` (data, not XML): push tasks park the bins far away, and every task shares
one model and therefore one compiled physics step.
"""

from __future__ import annotations

import math

import numpy as np

# -- public Panda facts -------------------------------------------------------------------

# (a_{i-1}, d_i, alpha_{i-1}) per joint, then the flange.
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
PANDA_FLANGE_D = 0.107
PANDA_TCP_OFFSET = 0.1034  # flange -> tool centre point, along the flange z
PANDA_HAND_YAW = -math.pi / 4  # the hand is mounted rotated about the flange z
PANDA_JOINT_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
PANDA_TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
PANDA_LINK_MASSES = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)  # links 1..7
PANDA_HAND_MASS = 0.73
PANDA_FINGER_TRAVEL = 0.04  # per finger; 0.08 m maximum opening

# -- scene constants (ours) ---------------------------------------------------------------

CUBE_HALF = 0.02  # a 4 cm cube fits the 8 cm gripper
CUBE_MASS = 0.1
TABLE_CENTER = (0.4, 0.0)
TABLE_HALF = (0.6, 0.6)  # x in [-0.2, 1.0], y in [-0.6, 0.6]
BIN_INNER_HALF = 0.1  # each bin is 0.2 x 0.2 inside
BIN_WALL_HALF_THICK = 0.01
BIN_WALL_HEIGHT = 0.05
# Bin centres relative to the bins' mocap body: source at -y, target at +y, sharing a wall.
BIN_OFFSET = BIN_INNER_HALF + BIN_WALL_HALF_THICK
SOURCE_BIN_OFFSET = (0.0, -BIN_OFFSET)
TARGET_BIN_OFFSET = (0.0, BIN_OFFSET)

# Joints 3, 5 and 7 are locked (3 and 5 at 0, 7 at pi/4): the arm then moves in the vertical
# plane at yaw q1 (joints 2, 4 and 6 are parallel pitch axes) and the fingers close across
# that plane. Four hinges plus the fingers keep MJX's body tree five levels deep.
LOCKED_JOINTS = {"joint3": 0.0, "joint5": 0.0, "joint7": math.pi / 4}
DRIVEN_JOINTS = ("joint1", "joint2", "joint4", "joint6")

# Position-servo gains per joint 1..7 (N m / rad, N m s / rad; only driven joints use
# them). Gravity is compensated (gravcomp), so the servos only move the arm, and their
# torque is capped well below the Panda's 87 N m: with full torque, random targets slammed
# the pads onto the cube hard enough for MJX's soft contacts to squeeze it centimetres into
# the table and pop it off (measured on 32 random 300-step episodes: 2-4 cubes thrown off
# at 87 N m, none at 30 N m). The velocity gain kv sits inside the clipped servo force
# (as joint damping it would cap joint speed at 1 rad/s and random exploration would
# hardly ever reach the cube); the Euler integrator applies it explicitly, which is
# stable here (kv dt / inertia < 0.4). Armature stands in for the reflected rotor inertia.
ARM_KP = (200.0, 200.0, 0.0, 150.0, 0.0, 40.0, 0.0)
ARM_KV = (30.0, 30.0, 0.0, 20.0, 0.0, 4.0, 0.0)
ARM_DAMPING = (2.0, 2.0, 0.0, 2.0, 0.0, 1.0, 0.0)
SERVO_TORQUE_LIMITS = (30.0, 30.0, 30.0, 30.0, 12.0, 12.0, 12.0)
ARM_ARMATURE = (0.3, 0.3, 0.0, 0.2, 0.0, 0.1, 0.0)
FINGER_KP = 1000.0  # N/m; the force is clipped to +-GRIP_FORCE
# The fingers are light: their damping must be implicit (joint damping, which Euler
# integrates implicitly), an explicit kv of 30 on 0.12 kg would be unstable at 10 ms.
FINGER_DAMPING = 30.0
# Light fingers on a stiff servo chatter against a pinched cube in MJX (the opening swung
# by +-7 mm at 0.01); 0.1 keeps it steady to 0.1 mm.
FINGER_ARMATURE = 0.1
GRIP_FORCE = 20.0
PAD_RADIUS = 0.008

TIMESTEP = 0.01  # physics substep, seconds
# One LAPACK call at a time: jaxlib 0.10's batched CPU Cholesky deadlocks when two calls
# run at once on a 2-thread XLA pool (both threads wait in ParallelBatchMap for work only
# they could do); with 512 vectorised envs the step hung for good. MJX factorises with
# LAPACK in the dense mass-matrix path, the implicit-fast integrator and the Newton
# solver, and the first two are independent of the third. A sparse mass matrix (MJX's own
# LDL in JAX) and the Euler integrator leave only the Newton solver's factorisation,
# which runs inside its sequential loop. (Conjugate gradient needs no LAPACK at all but
# let a pinched cube squirt out of the gripper.)
SOLVER_OPTIONS = 'integrator="Euler" jacobian="sparse" solver="Newton" iterations="4" ls_iterations="8"'

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _quat_x(angle: float) -> tuple[float, float, float, float]:
    return (math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0)


def _quat_z(angle: float) -> tuple[float, float, float, float]:
    return (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))


def _quat_mul(a, b) -> tuple[float, float, float, float]:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    )


def _dh_body_pose(a: float, d: float, alpha: float) -> tuple[tuple, tuple]:
    """Body pos/quat in the parent's frame for one modified-DH row (hinge about local z)."""
    pos = (a, -math.sin(alpha) * d, math.cos(alpha) * d)
    return tuple(0.0 if abs(p) < 1e-12 else p for p in pos), _quat_x(alpha)


def _link_geom(name: str, child_pos, mass: float, radius: float) -> str:
    """A capsule from this body's origin to the next joint's origin (visual, carries mass)."""
    start = np.zeros(3)
    end = np.asarray(child_pos, float)
    if np.linalg.norm(end) < 1e-6:  # coincident joints: a sphere-like stub along z
        end = np.array([0.0, 0.0, -0.06])
    return (
        f'<geom name="{name}" type="capsule" fromto="{_fmt(start)} {_fmt(end)}" size="{radius}" '
        f'mass="{mass}" class="visual" rgba="0.9 0.9 0.92 1"/>'
    )


def _arm_xml() -> str:
    """Nested bodies link1..link7, the hand and two fingers.

    A locked joint gets no <joint>: its fixed angle is folded into the child's quat, and
    MuJoCo's `fusestatic` then merges the jointless body into its parent. MJX walks the
    body tree one depth level at a time, so every level removed shortens both compile and
    run time (a 7-level chain compiles several times slower than a 4-level one on a CPU).
    """
    radii = (0.06, 0.06, 0.055, 0.055, 0.05, 0.045, 0.04)
    child_pos = [_dh_body_pose(*row)[0] for row in PANDA_DH[1:]] + [(0.0, 0.0, PANDA_FLANGE_D)]
    opened = []
    for i, row in enumerate(PANDA_DH):
        pos, quat = _dh_body_pose(*row)
        name = f"joint{i + 1}"
        if name in LOCKED_JOINTS:
            quat = _quat_mul(quat, _quat_z(LOCKED_JOINTS[name]))
            joint = ""
        else:
            lo, hi = PANDA_JOINT_LIMITS[i]
            joint = (
                f'<joint name="{name}" axis="0 0 1" range="{lo} {hi}" '
                f'armature="{ARM_ARMATURE[i]}" damping="{ARM_DAMPING[i]}"/>'
            )
        opened.append(
            f'<body name="link{i + 1}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">'
            + joint
            + _link_geom(f"link{i + 1}_geom", child_pos[i], PANDA_LINK_MASSES[i], radii[i])
        )
    travel = PANDA_FINGER_TRAVEL
    pad_r = PAD_RADIUS
    finger_base = 0.0584  # finger joint origin along the hand z
    pad_lo, pad_hi = PANDA_TCP_OFFSET - finger_base - 0.025, PANDA_TCP_OFFSET - finger_base
    fingers = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        fingers.append(
            f'<body name="finger_{side}" pos="0 0 {finger_base}" gravcomp="1">'
            f'<joint name="finger_{side}" type="slide" axis="0 {sign} 0" range="0 {travel}" '
            f'armature="{FINGER_ARMATURE}" damping="{FINGER_DAMPING}"/>'
            f'<geom name="finger_{side}_body" type="box" pos="0 {sign * (pad_r + 0.004)} {pad_lo / 2}" '
            f'size="0.01 0.006 {pad_lo / 2 + 0.003}" mass="0.015" class="visual" rgba="0.2 0.2 0.2 1"/>'
            f'<geom name="pad_{side}" type="capsule" fromto="0 {sign * pad_r} {pad_lo} 0 {sign * pad_r} {pad_hi}" '
            f'size="{pad_r}" mass="0.005" class="collision" group="0" rgba="0.1 0.1 0.1 1"/>'
            "</body>"
        )
    hand = (
        f'<body name="hand" pos="0 0 {PANDA_FLANGE_D}" quat="{_fmt(_quat_z(PANDA_HAND_YAW))}" gravcomp="1">'
        f'<geom name="hand_box" type="box" pos="0 0 0.03" size="0.025 0.1 0.03" mass="{PANDA_HAND_MASS}" '
        'class="visual" rgba="0.95 0.95 0.95 1"/>'
        '<geom name="palm" type="capsule" fromto="0 -0.06 0.045 0 0.06 0.045" size="0.015" mass="0.001" '
        'class="collision"/>'
        f'<site name="tcp" pos="0 0 {PANDA_TCP_OFFSET}" size="0.005" rgba="1 0 0 0.5"/>'
        + "".join(fingers)
        + "</body>"
    )
    return "".join(opened) + hand + "</body>" * len(opened)


def _bin_walls_xml() -> str:
    """Five box walls forming two bins side by side along y (the middle wall is shared)."""
    w, t, h = BIN_INNER_HALF, BIN_WALL_HALF_THICK, BIN_WALL_HEIGHT / 2
    long_half = 2 * (w + t) + t
    walls = [
        ("wall_front", (w + t, 0.0), (t, long_half)),
        ("wall_back", (-(w + t), 0.0), (t, long_half)),
        ("wall_mid", (0.0, 0.0), (w, t)),
        ("wall_left", (0.0, 2 * (w + t)), (w, t)),
        ("wall_right", (0.0, -2 * (w + t)), (w, t)),
    ]
    return "".join(
        f'<geom name="{n}" type="box" pos="{x} {y} {h}" size="{sx} {sy} {h}" class="collision" '
        'group="0" rgba="0.55 0.4 0.25 1"/>'
        for n, (x, y), (sx, sy) in walls
    )


BIN_WALLS = ("wall_front", "wall_back", "wall_mid", "wall_left", "wall_right")


def arm_mjcf() -> str:
    """The whole scene as an MJCF string; deterministic, so every env shares one model."""
    driven = [int(j[-1]) - 1 for j in DRIVEN_JOINTS]
    kp = [
        f'<position name="act{i + 1}" joint="joint{i + 1}" kp="{ARM_KP[i]}" kv="{ARM_KV[i]}" '
        f'ctrlrange="{PANDA_JOINT_LIMITS[i][0]} {PANDA_JOINT_LIMITS[i][1]}" '
        f'forcerange="{-SERVO_TORQUE_LIMITS[i]} {SERVO_TORQUE_LIMITS[i]}"/>'
        for i in driven
    ]
    kp += [
        f'<position name="act_{j}" joint="{j}" kp="{FINGER_KP}" ctrlrange="0 {PANDA_FINGER_TRAVEL}" '
        f'forcerange="{-GRIP_FORCE} {GRIP_FORCE}"/>'
        for j in FINGER_JOINTS
    ]
    # Harder pad contacts (higher impedance) keep a pinched cube from sinking into the
    # pads and creeping down while lifted: lifted 18 cm, it slipped 13 mm with MuJoCo's
    # default solimp and under 1 mm with this one.
    pad = 'solimp="0.95 0.99 0.001"'
    pairs = [f'<pair geom1="cube" geom2="{g}"/>' for g in ["table", "palm"] + list(BIN_WALLS)]
    pairs += [f'<pair geom1="cube" geom2="pad_{side}" {pad}/>' for side in ("left", "right")]
    pairs += ['<pair geom1="table" geom2="pad_left"/>', '<pair geom1="table" geom2="pad_right"/>']
    tx, ty = TABLE_CENTER
    hx, hy = TABLE_HALF
    return f"""<mujoco model="crl_panda_arm">
  <compiler angle="radian" autolimits="true" fusestatic="true"/>
  <option timestep="{TIMESTEP}" {SOLVER_OPTIONS} cone="pyramidal"/>
  <default>
    <default class="visual"><geom contype="0" conaffinity="0" group="1"/></default>
    <default class="collision"><geom contype="0" conaffinity="0" group="3" friction="1 0.005 0.0001"/></default>
  </default>
  <worldbody>
    <light pos="0.4 0 2" dir="0 0 -1" directional="true"/>
    <geom name="table" type="plane" pos="{tx} {ty} 0" size="{hx} {hy} 0.05" class="collision"
          group="0" rgba="0.75 0.65 0.5 1"/>
    <geom name="pedestal" type="cylinder" pos="0 0 0.05" size="0.08 0.05" class="visual" rgba="0.3 0.3 0.3 1"/>
    <body name="link0"><geom name="link0_geom" type="capsule" fromto="0 0 0 0 0 0.14" size="0.07"
          class="visual" rgba="0.9 0.9 0.92 1" mass="0"/>
      {_arm_xml()}
    </body>
    <body name="cube" pos="0.5 0 {CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="{CUBE_MASS}"
            class="collision" group="0" rgba="0.85 0.2 0.2 1"/>
    </body>
    <body name="bins" mocap="true" pos="0 0 0">{_bin_walls_xml()}</body>
    <body name="goal" mocap="true" pos="0.5 0 {CUBE_HALF}">
      <geom name="goal_marker" type="sphere" size="0.02" class="visual" group="0" rgba="0.1 0.8 0.2 0.5"/>
    </body>
  </worldbody>
  <contact>{"".join(pairs)}</contact>
  <actuator>{"".join(kp)}</actuator>
</mujoco>
"""
