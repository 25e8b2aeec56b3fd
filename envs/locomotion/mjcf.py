"""Programmatic MJCF: Brax's shipped robot model plus maze walls and props, as a string.

Nothing here is hand-written per task: the robot XML is read from the installed Brax
package, and walls, the ball and the block are added as elements computed from numbers.

Collision filtering uses MuJoCo's contype/conaffinity bits (a pair collides when
contype1 & conaffinity2 or contype2 & conaffinity1 is non-zero). Brax's models use bit 1
for "touches the floor" (the ant's feet; the paper's humanoid gives it to every geom,
which `Robot.floor_geoms = None` reproduces); we add two bits for walls and props:

    WALL_BIT  walls have contype WALL_BIT; robot geoms that must be stopped by walls get
              it in their conaffinity (the block too, so it cannot be pushed through).
    PROP_BIT  the ball and the block have contype PROP_BIT; robot geoms that can push
              them get it in their conaffinity. Both also carry FLOOR_BIT: they rest on
              the floor with its friction.

Walls neither touch the floor nor each other, so a maze adds no contacts at rest.

Walls come in two forms. For physics, a maze gets `WINDOW` box *slots* that the env moves,
every step, onto the wall cells of the 3 x 3 block of cells around the torso (parking the
rest far below the floor): a robot is smaller than a cell, so nothing else can be touched,
and the contact work no longer grows with the maze (a 62-wall maze costs what a 9-wall
one does) and mazes of one robot differ only in data. For rendering, every wall of the
layout is placed where it stands (`static_walls`), which gives the same bodies and qpos.
The small push arena uses `static_walls` for physics too: its block may slide away from
the torso, out of any window around it.

MJX's broad phase (the model's `max_geom_pairs`) sends only the K pairs of each geom-type
group whose bounding spheres are closest through the narrow phase. A K below the number of
pairs that can touch at once drops real contacts (a humanoid pressed into a corner lost
about 7 % of its wall contacts at K = 8), and K costs narrow-phase work whether pairs touch
or not. `broad_phase_cap` gives a K that is exact in every state: the most pairs of one
group whose bounding spheres can overlap at once (pairs that touch overlap). Culling
reorders the contacts, so a rollout matches the uncapped model's to rounding, not bit for
bit; at the paper's 512 envs the humanoid's exact cap (48) steps 1.8-2x as fast as no cap.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import math
import xml.etree.ElementTree as ET

import mujoco

from envs.locomotion.robots import Robot

FLOOR_BIT = 1
WALL_BIT = 2
PROP_BIT = 4

WINDOW = 9  # 3 x 3 cells around the torso
PARK_DEPTH = 50.0  # parked wall slots sit this many cells below the floor

WALL_RGBA = "0.7 0.5 0.3 1"


@dataclasses.dataclass(frozen=True)
class Ball:
    """A free ball (ant_ball) on the floor: its x, y are the goal coordinates."""

    radius: float = 0.3
    mass: float = 0.3


@dataclasses.dataclass(frozen=True)
class Block:
    """A free box (ant_push) resting on the floor at (x, y).

    Floor friction (Brax's floor has friction 1, and MuJoCo takes the larger of the two
    geoms') resists a shove of less than mass * g, about 3 N: light enough for the ant
    (0.9 kg) to push, heavy enough to stop when it is no longer pushed. Pushed at the
    ant's torso height it slides long before it could tip over.
    """

    x: float
    y: float
    half_size: tuple[float, float, float] = (1.6, 1.6, 0.6)
    mass: float = 0.3


# The range (+- metres) of the target body's slide joints in the paper's models: 100 in
# its maze models (humanoid_maze.xml; the largest humanoid maze has goals 20 m out), 20 in
# the open humanoid's (humanoid.xml; its goals are at most 5 m away).
TARGET_JOINT_RANGE = {"maze": 100.0, "open": 20.0}


@dataclasses.dataclass(frozen=True)
class Target:
    """The paper's `target` body: a contact-free sphere on two slide joints (x, y) at the
    goal, the model's last body. It puts the commanded goal into the humanoid's state."""

    height: float
    joint_range: float  # +- metres: TARGET_JOINT_RANGE of the task kind
    radius: float = 0.5
    mass: float = 1.0


def robot_xml(robot: Robot) -> ET.Element:
    """The robot's MJCF as Brax ships it (read from the installed package)."""
    path = importlib.resources.files("brax") / "envs" / "assets" / robot.asset
    return ET.fromstring(path.read_text())


def _robot_geoms(root: ET.Element) -> list[ET.Element]:
    """Geoms of the robot: everything under the worldbody's (single) root body."""
    (body,) = root.find("worldbody").findall("body")
    return list(body.iter("geom"))


def _add_bit(geom: ET.Element, attr: str, bit: int) -> None:
    # The ant's <default> sets conaffinity 0; the humanoid's too, so a missing attribute is 0.
    geom.set(attr, str(int(geom.get(attr, "0")) | bit))


def _first_numeric(root: ET.Element, name: str, data: str) -> None:
    """Add <numeric name=... data=...> as the FIRST custom numeric.

    MJX reads its numerics (max_geom_pairs) as numeric_data[numeric id] rather than at
    the numeric's address; the two agree only for the first numeric (the ant's
    15-value init_qpos would otherwise be read instead, silently disabling contacts).
    """
    custom = root.find("custom")
    if custom is None:
        custom = ET.SubElement(root, "custom")
    custom.insert(0, ET.Element("numeric", name=name, data=data))


def _extend_init_qpos(root: ET.Element, extra: list[float]) -> None:
    """Brax reads the reset pose from <numeric name="init_qpos">; props add to q."""
    for n in root.find("custom").findall("numeric"):
        if n.get("name") == "init_qpos":
            n.set("data", n.get("data") + " " + " ".join(f"{v:g}" for v in extra))
            return
    # No init_qpos in the model (the humanoid): MuJoCo's qpos0 is used, props included.


def _wall_box(parent: ET.Element, name: str, x: float, y: float, z: float, cell: float) -> None:
    ET.SubElement(
        parent, "geom", name=name, type="box",
        pos=f"{x:g} {y:g} {z:g}", size=f"{cell / 2:g} {cell / 2:g} {cell / 4:g}",
        contype=str(WALL_BIT), conaffinity="0", rgba=WALL_RGBA,
    )


def wall_height(cell: float) -> float:
    """Walls are boxes filling a cell, half a cell high."""
    return cell / 2


def park_position(cell: float) -> tuple[float, float, float]:
    return (0.0, 0.0, -PARK_DEPTH * cell)


def build(
    robot: Robot,
    *,
    wall_slots: int = 0,
    static_walls: list[tuple[float, float]] = (),
    ball: Ball | None = None,
    block: Block | None = None,
    target: Target | None = None,
    max_geom_pairs: int | None = None,
) -> str:
    """MJCF text of the robot with `wall_slots` movable wall boxes (named wall_slot_<k>),
    walls fixed at the cell centres `static_walls` (push arena, rendering), props, and
    the target body last. `max_geom_pairs`: MJX's broad-phase cap (`Scene.max_geom_pairs`,
    from `broad_phase_cap`); None: no cap, every candidate pair reaches the narrow phase."""
    root = robot_xml(robot)
    world = root.find("worldbody")
    cell = robot.cell_size
    has_walls = wall_slots > 0 or len(static_walls) > 0

    for geom in _robot_geoms(root):
        if robot.floor_geoms is None or geom.get("name") in robot.floor_geoms:
            _add_bit(geom, "contype", FLOOR_BIT)
        if has_walls and (robot.wall_geoms is None or geom.get("name") in robot.wall_geoms):
            _add_bit(geom, "conaffinity", WALL_BIT)
        if (ball or block) and robot.prop_geoms:
            _add_bit(geom, "conaffinity", PROP_BIT)

    park = park_position(cell)
    for k in range(wall_slots):
        _wall_box(world, f"wall_slot_{k}", *park, cell)
    for k, (x, y) in enumerate(static_walls):
        _wall_box(world, f"wall_{k}", x, y, wall_height(cell) / 2, cell)
    if max_geom_pairs is not None and (has_walls or block is not None):
        _first_numeric(root, "max_geom_pairs", str(max_geom_pairs))

    if ball is not None:
        body = ET.SubElement(world, "body", name="ball", pos=f"0 0 {ball.radius:g}")
        ET.SubElement(body, "joint", name="ball_root", type="free", limited="false",
                      armature="0", damping="0")
        ET.SubElement(body, "geom", name="ball_geom", type="sphere", size=f"{ball.radius:g}",
                      mass=f"{ball.mass:g}", contype=str(PROP_BIT | FLOOR_BIT),
                      conaffinity="0", rgba="0.9 0.2 0.2 1")
        _extend_init_qpos(root, [0.0, 0.0, ball.radius, 1.0, 0.0, 0.0, 0.0])

    if block is not None:
        hx, hy, hz = block.half_size
        body = ET.SubElement(world, "body", name="block", pos=f"0 0 {hz:g}")
        ET.SubElement(body, "joint", name="block_root", type="free", limited="false",
                      armature="0", damping="0")
        ET.SubElement(body, "geom", name="block_geom", type="box", size=f"{hx:g} {hy:g} {hz:g}",
                      mass=f"{block.mass:g}", contype=str(PROP_BIT | FLOOR_BIT),
                      conaffinity=str(WALL_BIT), rgba="0.2 0.4 0.9 1")
        _extend_init_qpos(root, [block.x, block.y, hz, 1.0, 0.0, 0.0, 0.0])

    if target is not None:
        body = ET.SubElement(world, "body", name="target", pos=f"0 0 {target.height:g}")
        for axis, name in (("1 0 0", "target_x"), ("0 1 0", "target_y")):
            ET.SubElement(body, "joint", name=name, type="slide", axis=axis, pos="0 0 0",
                          limited="true", range=f"{-target.joint_range:g} {target.joint_range:g}",
                          armature="0", damping="0", stiffness="0")
        ET.SubElement(body, "geom", name="target", type="sphere", size=f"{target.radius:g}",
                      mass=f"{target.mass:g}", contype="0", conaffinity="0", rgba="0.2 0.8 0.2 0.5")
        _extend_init_qpos(root, [0.0, 0.0])

    return ET.tostring(root, encoding="unicode")


def broad_phase_cap(model: mujoco.MjModel, cell: float) -> int | None:
    """A `max_geom_pairs` with which MJX drops no contact in any state of `model` (built
    without a cap), or None where no geom-type group has more pairs than that.

    A pair can touch only if its bounding spheres overlap, and the broad phase keeps the K
    pairs with the most overlap, so K = the most pairs of one group that can overlap at
    once is exact. Walls (the world body's boxes) stand on a grid of `cell` spacing, and
    at most (floor(2 R / cell) + 1)^2 of its points lie within R of any point, so a moving
    geom of bounding radius r overlaps at most that many walls with R = r + the wall's
    radius; a pair of two moving geoms (robot and block) counts once. Per group, the sum
    over its moving geoms; K is the largest group's. Pairs with the floor plane are never
    culled and are left out, as are pairs that MJX would not collide (as it filters them).
    """
    body, parent = model.geom_bodyid, model.body_parentid
    plane = int(mujoco.mjtGeom.mjGEOM_PLANE)
    walls_of = collections.defaultdict(lambda: collections.defaultdict(list))  # group -> moving geom -> walls
    moving_pairs = collections.Counter()  # group -> pairs of two moving geoms
    for g1 in range(model.ngeom):
        for g2 in range(g1 + 1, model.ngeom):
            if body[g1] == body[g2] or plane in (model.geom_type[g1], model.geom_type[g2]):
                continue
            if not (model.geom_contype[g1] & model.geom_conaffinity[g2] or model.geom_contype[g2] & model.geom_conaffinity[g1]):
                continue
            if body[g1] and body[g2] and (parent[body[g1]] == body[g2] or parent[body[g2]] == body[g1]):
                continue  # MJX's parent-child filter
            group = tuple(sorted((int(model.geom_type[g1]), int(model.geom_type[g2]))))
            if body[g1] == 0 or body[g2] == 0:  # a wall and a moving geom
                wall, geom = (g1, g2) if body[g1] == 0 else (g2, g1)
                walls_of[group][geom].append(wall)
            else:
                moving_pairs[group] += 1
    caps, sizes = [], collections.Counter(moving_pairs)
    for group in set(walls_of) | set(moving_pairs):
        total = moving_pairs[group]
        for geom, walls in walls_of[group].items():
            reach = model.geom_rbound[geom] + max(model.geom_rbound[w] for w in walls)
            total += min(len(walls), (math.floor(2 * reach / cell) + 1) ** 2)
            sizes[group] += len(walls)
        caps.append(total)
    if not caps or max(caps) >= max(sizes.values()):
        return None  # no group has more pairs than that: nothing would be culled
    return max(caps)
