"""The paper's Franka Panda scene as Python data, and the MJCF generator over it.

Every number below is a fact of the paper's `envs/assets/panda_*.xml` (MuJoCo
Menagerie's Panda: body tree, inertials, joint defaults, actuator gains; the paper's
collision primitives and contact pairs). The XML is generated here; no mesh file is
read: the paper's link meshes are visual only, so our links are drawn with capsules
and cylinders of roughly the real shapes (`contype 0`, and every link carries an
explicit inertial, so drawn geoms add no mass).

The paper loads its XMLs through Brax's `mjcf.load`, which fuses every body without a
joint into its parent before MuJoCo compiles it: `link0`, the bins and the table into
the world, `hand` into `link7`. That fusion is physics (the hand's capsule then adds no
mass: link7's explicit inertial wins), so we generate the fused tree directly: the hand
geoms and the finger bodies sit in link7 with the hand's pose composed in, and world
geoms, the cube and the marker come before the arm (MuJoCo sorts the contact pairs by
body, so the pairs' order and orientation are the paper's too). The fusion also drops
link0's `childclass="panda"`: the arm joints (and grasp's fingertip hinges) fall back to
MuJoCo's defaults, so they have no armature and no damping, and joints 1, 3, 5, 7 no
range; only the fingers, which name their class, keep armature 0.1 and damping 5. That
is the physics the paper ran, so it is ours.

One generator serves all six tasks; a task picks the variant (`SceneSpec`): reach has no
fingers and no cube, grasp adds the fingertip bodies, bin-picking adds bin walls (with
their contact pairs) and `impratio 10`, exactly as the paper's per-task XMLs differ.
The goal marker is a mocap body (the paper: a gravity-compensated free body outside
every contact pair, which no force reaches either), so it adds no degrees of freedom.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# -- simulation (paper: XML option + `sys.tree_replace` in envs/manipulation/arm_envs.py) --
TIMESTEP = 0.002
FRAME_SKIP = 25
CONTROL_DT = TIMESTEP * FRAME_SKIP  # 0.05 s per env step
SOLVER_ITERATIONS = 6
LS_ITERATIONS = 12
INTEGRATOR = "implicitfast"
# The paper's "auto" is dense at this size; sparse is the same mass matrix factorised by
# MJX's own LDL in JAX instead of LAPACK, which keeps two batched LAPACK Cholesky calls
# from ever running at once on the CPU (the deadlock, docs/envs_manipulation.md).
JACOBIAN = "sparse"

CUBE_HALF = 0.03
CUBE_START_Z = 0.07  # the cube's body pos in the XML: it drops 4 cm onto the table at reset
REST_Z = CUBE_HALF
TABLE_FRICTION = (0.2, 0.005, 0.0001)
FINGER_FRICTION = (10.0, 0.005, 0.0001)
HAND_CAPSULE = (0.04, 0.06)  # radius, half-length
FINGER_BOX = (0.015, 0.005, 0.04)  # half-sizes
FINGER_BOX_POS = (0.0, 0.0055, 0.035)
FINGER_RANGE = (0.0, 0.08)
FINGERTIP_POS = (0.0, 0.005, 0.07)  # arm_grasp's fingertip bodies, in the finger frame
FINGERTIP_HALF = 0.005

FINGER_ARMATURE = 0.1  # the "panda" class, reached by the fingers only (see above)
FINGER_DAMPING = 5.0
DEFAULT_RANGE = (-2.8973, 2.8973)  # the actuators' ctrlrange; the joints' range only on paper


@dataclasses.dataclass(frozen=True)
class Link:
    """One arm link: its pose in the parent, its joint range, and Menagerie's inertial."""

    name: str
    pos: tuple
    quat: tuple
    joint_range: tuple | None  # None: unlimited (the class range is lost in the fusion)
    mass: float
    ipos: tuple
    fullinertia: tuple  # ixx iyy izz ixy ixz iyz


LINKS = (
    Link("link1", (0, 0, 0.333), (1, 0, 0, 0), None, 4.970684, (0.003875, 0.002081, -0.04762),
         (0.70337, 0.70661, 0.0091170, -0.00013900, 0.0067720, 0.019169)),
    Link("link2", (0, 0, 0), (1, -1, 0, 0), (-1.7628, 1.7628), 0.646926, (-0.003141, -0.02872, 0.003495),
         (0.0079620, 2.8110e-2, 2.5995e-2, -3.925e-3, 1.0254e-2, 7.04e-4)),
    Link("link3", (0, -0.316, 0), (1, 1, 0, 0), None, 3.228604, (2.7518e-2, 3.9252e-2, -6.6502e-2),
         (3.7242e-2, 3.6155e-2, 1.083e-2, -4.761e-3, -1.1396e-2, -1.2805e-2)),
    Link("link4", (0.0825, 0, 0), (1, 1, 0, 0), (-3.0718, -0.0698), 3.587895, (-5.317e-2, 1.04419e-1, 2.7454e-2),
         (2.5853e-2, 1.9552e-2, 2.8323e-2, 7.796e-3, -1.332e-3, 8.641e-3)),
    Link("link5", (-0.0825, 0.384, 0), (1, -1, 0, 0), None, 1.225946, (-1.1953e-2, 4.1065e-2, -3.8437e-2),
         (3.5549e-2, 2.9474e-2, 8.627e-3, -2.117e-3, -4.037e-3, 2.29e-4)),
    Link("link6", (0, 0, 0), (1, 1, 0, 0), (-0.0175, 3.7525), 1.666555, (6.0149e-2, -1.4117e-2, -1.0517e-2),
         (1.964e-3, 4.354e-3, 5.433e-3, 1.09e-4, -1.158e-3, 3.41e-4)),
    Link("link7", (0.088, 0, 0), (1, 1, 0, 0), None, 7.35522e-01, (1.0517e-2, -4.252e-3, 6.1597e-2),
         (1.2516e-2, 1.0027e-2, 4.815e-3, -4.28e-4, -1.196e-3, -7.41e-4)),
)
HAND_POS = (0.0, 0.0, 0.107)  # in link7
HAND_QUAT = (0.9238795, 0.0, 0.0, -0.3826834)
FINGER_POS = (0.0, 0.0, 0.0584)  # in the hand
FINGER_MASS = 0.015
FINGER_DIAGINERTIA = (2.375e-6, 2.375e-6, 7.5e-7)

# Actuators: (joint, gain, bias kp, bias kv, ctrlrange, forcerange), `general` with an
# affine bias: force = gain * ctrl - kp * q - kv * qd.
ARM_ACTUATORS = (
    ("joint1", 4500, 4500, 450, DEFAULT_RANGE, (-87, 87)),
    ("joint2", 4500, 4500, 450, (-1.7628, 1.7628), (-87, 87)),
    ("joint3", 2000, 3500, 350, DEFAULT_RANGE, (-87, 87)),
    ("joint4", 2000, 3500, 350, (-3.0718, -0.0698), (-87, 87)),
    ("joint5", 1000, 2000, 200, DEFAULT_RANGE, (-12, 12)),
    ("joint6", 1000, 2000, 200, (-0.0175, 3.7525), (-12, 12)),
    ("joint7", 1000, 2000, 200, DEFAULT_RANGE, (-12, 12)),
)
# The paper remaps the finger's 0-0.08 m target onto ctrl 0-255: gain 0.08 * 500 / 255.
FINGER_ACTUATORS = (
    ("finger_joint1", 0.15686, 500, 50, (0, 255), (-500, 500)),
    ("finger_joint2", 0.15686, 500, 50, (0, 255), (-500, 500)),
)
FINGER_EQUALITY = {"solimp": (0.95, 0.99, 0.001), "solref": (0.005, 1)}


@dataclasses.dataclass(frozen=True)
class Bin:
    """A bin's four walls (bin-picking) around a centre; `floor` draws a flat patch instead
    (the push tasks' blue start and red goal regions, visual only)."""

    centre: tuple  # (x, y)
    half: float  # wall centre-line offset from the bin's centre
    rgba: tuple
    floor: bool = False


WALL_HALF_THICK = 0.005
WALL_HALF_HEIGHT = 0.033
BLUE, RED = (0, 0.2, 0.8, 1), (0.8, 0, 0, 1)


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """Which variant of the one scene a task runs on."""

    fingers: bool = True
    cube: bool = True
    fingertips: bool = False
    bins: tuple = ()  # Bin, named binA, binB in order
    impratio: float = 1.0
    marker: str = "cube"  # goal marker: "cube" (6 cm box), "sphere" (reach), "fingertips" (grasp)


# -- small numeric helpers ----------------------------------------------------------------


def _unit(q) -> np.ndarray:
    q = np.asarray(q, np.float64)
    return q / np.linalg.norm(q)


def quat_mul(a, b) -> np.ndarray:
    """The rotation b then a (w, x, y, z), of the unit quaternions along a and b (MuJoCo's mju_mulQuat)."""
    import mujoco  # lazy: listing the arm's task ids (envs.manipulation.tasks) must not load MuJoCo

    out = np.empty(4)
    mujoco.mju_mulQuat(out, _unit(a), _unit(b))
    return out


def quat_rotate(q, v) -> np.ndarray:
    """v rotated by the unit quaternion along q (MuJoCo's mju_rotVecQuat)."""
    import mujoco  # lazy: as above

    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, np.asarray(v, np.float64), _unit(q))
    return out


def _in_hand(pos, quat=(1, 0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """A pose given in the hand frame, expressed in link7 (Brax's fusion of the hand)."""
    return np.asarray(HAND_POS) + quat_rotate(HAND_QUAT, pos), quat_mul(HAND_QUAT, quat)


def _v(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


# -- drawing: primitive geoms standing in for the Menagerie meshes ------------------------

WHITE, DARK = (0.95, 0.95, 0.95, 1), (0.25, 0.25, 0.25, 1)


def _visual(kind: str, size, rgba, pos=None, quat=None, fromto=None) -> str:
    place = f'fromto="{_v(fromto)}"' if fromto is not None else f'pos="{_v(pos or (0, 0, 0))}"'
    if quat is not None:
        place += f' quat="{_v(quat)}"'
    return (f'<geom type="{kind}" size="{_v(size)}" {place} rgba="{_v(rgba)}" '
            'contype="0" conaffinity="0" group="2" mass="0"/>')


# Per link: (capsule from the link's origin towards its child, joint housing along z).
LINK_DRAWING = {
    "link1": [("capsule", (0.06,), WHITE, None, None, (0, 0, -0.19, 0, 0, -0.06))],
    "link2": [("capsule", (0.06,), WHITE, None, None, (0, 0, 0, 0, -0.2, 0))],
    "link3": [("capsule", (0.055,), WHITE, None, None, (0, 0, -0.12, 0, 0, 0)),
              ("capsule", (0.05,), WHITE, None, None, (0, 0, 0, 0.0825, 0, 0))],
    "link4": [("capsule", (0.05,), WHITE, None, None, (0, 0, 0, -0.0825, 0.1, 0)),
              ("capsule", (0.05,), WHITE, None, None, (-0.0825, 0.1, 0, -0.0825, 0.384, 0))],
    "link5": [("capsule", (0.045,), WHITE, None, None, (0, 0, -0.26, 0, 0, -0.05)),
              ("capsule", (0.04,), WHITE, None, None, (0, 0.08, -0.2, 0, 0.08, -0.1))],
    "link6": [("capsule", (0.045,), WHITE, None, None, (0, 0, 0, 0.088, 0, 0))],
    "link7": [("cylinder", (0.045, 0.04), DARK, (0, 0, 0.04), None, None)],
}
HOUSING = ("cylinder", (0.062, 0.06), DARK)  # every joint's motor housing, along its axis
BASE_DRAWING = [("cylinder", (0.07, 0.07), WHITE, (0, 0, 0.07), None, None),
                ("cylinder", (0.1, 0.005), DARK, (0, 0, 0.005), None, None)]


def _drawn(items) -> list[str]:
    return [_visual(kind, size, rgba, pos, quat, fromto) for kind, size, rgba, pos, quat, fromto in items]


# -- the generator ------------------------------------------------------------------------


def _finger(side: str, quat, spec: SceneSpec) -> list[str]:
    pos, q = _in_hand(FINGER_POS, quat)
    joint = "finger_joint1" if side == "left" else "finger_joint2"
    lines = [
        f'<body name="{side}_finger" pos="{_v(pos)}" quat="{_v(q)}">',
        f'<inertial mass="{FINGER_MASS}" pos="0 0 0" diaginertia="{_v(FINGER_DIAGINERTIA)}"/>',
        f'<joint name="{joint}" type="slide" axis="0 1 0" range="{_v(FINGER_RANGE)}" '
        f'armature="{FINGER_ARMATURE}" damping="{FINGER_DAMPING}"/>',
        f'<geom name="{side}_finger_geom" type="box" size="{_v(FINGER_BOX)}" pos="{_v(FINGER_BOX_POS)}" '
        f'friction="{_v(FINGER_FRICTION)}" rgba="{_v(DARK)}" contype="0" conaffinity="0"/>',
    ]
    if spec.fingertips:  # arm_grasp: a 1 g cube on a hinge held in +-1e-4 rad
        lines += [
            f'<body name="{side}_fingertip" pos="{_v(FINGERTIP_POS)}">',
            f'<joint name="{side}_fingertip_joint" axis="0 0 1" range="-0.0001 0.0001"/>',
            f'<geom name="{side}_fingertip_geom" type="box" size="{_v([FINGERTIP_HALF] * 3)}" '
            'rgba="1 0 0 1" contype="0" conaffinity="0"/>',
            "</body>",
        ]
    return lines + ["</body>"]


def _hand(spec: SceneSpec) -> list[str]:
    pos, quat = _in_hand((0, 0, 0.035), (1, 1, 0, 0))
    lines = [
        f'<geom name="hand_geom" type="capsule" size="{_v(HAND_CAPSULE)}" pos="{_v(pos)}" quat="{_v(quat)}" '
        'rgba="1 1 1 1" contype="0" conaffinity="0"/>',
    ]
    if spec.fingers:
        lines += _finger("left", (1, 0, 0, 0), spec) + _finger("right", (0, 0, 0, 1), spec)
    return lines


def _arm(spec: SceneSpec) -> list[str]:
    lines, depth = [], 0
    for link in LINKS:
        joint = link.name.replace("link", "joint")
        limit = "" if link.joint_range is None else f' range="{_v(link.joint_range)}"'
        lines += [
            f'<body name="{link.name}" pos="{_v(link.pos)}" quat="{_v(_unit(link.quat))}">',
            f'<inertial mass="{link.mass}" pos="{_v(link.ipos)}" fullinertia="{_v(link.fullinertia)}"/>',
            f'<joint name="{joint}" axis="0 0 1"{limit}/>',
            _visual(HOUSING[0], HOUSING[1], HOUSING[2], (0, 0, 0)),
            *_drawn(LINK_DRAWING[link.name]),
        ]
        depth += 1
    lines += _hand(spec)
    return lines + ["</body>"] * depth


def bin_walls(b: Bin) -> list[tuple[tuple, tuple]]:
    """(pos, half-size) of a bin's four walls, in the bin's frame (paper order 1-4)."""
    h, t, z = b.half, WALL_HALF_THICK, WALL_HALF_HEIGHT
    return [((0, -h, z), (h + t, t, z)), ((0, h, z), (h + t, t, z)),
            ((h, 0, z), (t, h - t, z)), ((-h, 0, z), (t, h - t, z))]


def _bins(spec: SceneSpec) -> tuple[list[str], list[str]]:
    lines, names = [], []
    for name, b in zip(("binA", "binB"), spec.bins):
        x, y = b.centre
        if b.floor:
            lines.append(f'<geom name="{name}_floor" type="box" pos="{_v((x, y, 0.0005))}" '
                         f'size="{_v((b.half, b.half, 0.0005))}" rgba="{_v(b.rgba)}" contype="0" conaffinity="0"/>')
            continue
        for k, (pos, size) in enumerate(bin_walls(b), start=1):
            names.append(f"{name}{k}")
            lines.append(f'<geom name="{name}{k}" type="box" pos="{_v((x + pos[0], y + pos[1], pos[2]))}" '
                         f'size="{_v(size)}" rgba="{_v(b.rgba)}" contype="0" conaffinity="0"/>')
    return lines, names


def _marker(spec: SceneSpec) -> list[str]:
    g = 'contype="0" conaffinity="0" group="1"'
    if spec.marker == "sphere":
        geoms = [f'<geom name="goal_marker_geom" type="sphere" size="0.03" rgba="0.3 1 0.3 1" {g}/>']
    elif spec.marker == "fingertips":  # left fingertip target, right one 7 cm along -x
        geoms = [f'<geom name="left_finger_goal_geom" type="box" size="0.005 0.005 0.005" rgba="1 0.2 0.2 1" {g}/>',
                 f'<geom name="right_finger_goal_geom" type="box" pos="-0.07 0 0" size="0.005 0.005 0.005" '
                 f'rgba="1 0.2 0.2 1" {g}/>']
    else:
        geoms = [f'<geom name="goal_marker_geom" type="box" size="{_v([CUBE_HALF] * 3)}" rgba="0.3 1 0.3 1" {g}/>']
    return ['<body name="goal_marker" mocap="true" pos="0 0 -1">', *geoms, "</body>"]


def contact_pairs(spec: SceneSpec) -> list[tuple[str, str]]:
    """The paper's explicit contact pairs, in its order; nothing else ever collides."""
    fingers = ["left_finger_geom", "right_finger_geom"] if spec.fingers else []
    walls = _bins(spec)[1]
    pairs = []
    if spec.cube:
        pairs += [("cube_geom", "table_geom"), ("cube_geom", "hand_geom")]
        pairs += [("cube_geom", f) for f in fingers]
        pairs += [("cube_geom", w) for w in walls]
    pairs += [("table_geom", "hand_geom")] + [("table_geom", f) for f in fingers]
    pairs += [(f, w) for f in fingers for w in walls] + [("hand_geom", w) for w in walls]
    if fingers:
        pairs.append(tuple(fingers))
    return pairs


def panda_mjcf(spec: SceneSpec) -> str:
    """The MJCF of one scene variant."""
    bins, _ = _bins(spec)
    cube = []
    if spec.cube:
        cube = ['<body name="cube" pos="0 0.6 0.07">', "<freejoint/>",
                f'<geom name="cube_geom" type="box" size="{_v([CUBE_HALF] * 3)}" rgba="0 0.4 0 1" '
                'contype="0" conaffinity="0"/>', "</body>"]
    actuators = ARM_ACTUATORS + (FINGER_ACTUATORS if spec.fingers else ())
    acts = [f'<general name="actuator{i}" joint="{j}" dyntype="none" biastype="affine" gainprm="{g} 0 0" '
            f'biasprm="0 {-kp} {-kv}" ctrlrange="{_v(cr)}" forcerange="{_v(fr)}"/>'
            for i, (j, g, kp, kv, cr, fr) in enumerate(actuators, start=1)]
    equality = []
    if spec.fingers:
        e = FINGER_EQUALITY
        equality = ["<equality>", f'<joint joint1="finger_joint1" joint2="finger_joint2" solimp="{_v(e["solimp"])}" '
                    f'solref="{_v(e["solref"])}"/>', "</equality>"]
    parts = [
        '<mujoco model="panda">',
        '<compiler angle="radian" autolimits="true"/>',
        f'<option timestep="{TIMESTEP}" iterations="{SOLVER_ITERATIONS}" ls_iterations="{LS_ITERATIONS}" '
        f'integrator="{INTEGRATOR}" impratio="{spec.impratio}" jacobian="{JACOBIAN}"/>',
        '<visual><global offwidth="1280" offheight="960"/><quality shadowsize="2048"/></visual>',
        "<asset>",
        '<texture name="grid" type="2d" builtin="checker" rgb1="0.62 0.6 0.56" rgb2="0.56 0.54 0.5" '
        'width="256" height="256"/>',
        '<material name="table" texture="grid" texrepeat="8 8"/>',
        "</asset>",
        "<worldbody>",
        '<light name="top" pos="0 0 2" mode="trackcom"/>',
        '<camera name="front" pos="0.55 2.05 1.3" xyaxes="-0.97 0.24 0 -0.15 -0.6 0.79"/>',
        *_drawn(BASE_DRAWING),
        *bins,
        f'<geom name="table_geom" type="plane" pos="0 0.2 0" size="2.8 2.4 0.1" friction="{_v(TABLE_FRICTION)}" '
        'material="table" contype="0" conaffinity="0"/>',
        *cube,
        *_marker(spec),
        *_arm(spec),
        "</worldbody>",
        *equality,
        "<contact>",
        *[f'<pair geom1="{a}" geom2="{b}"/>' for a, b in contact_pairs(spec)],
        "</contact>",
        "<actuator>",
        *acts,
        "</actuator>",
        "</mujoco>",
    ]
    return "\n".join(parts)
