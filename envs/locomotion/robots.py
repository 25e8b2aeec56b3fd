"""The two Brax robots of the locomotion family and the facts each task needs about them.

A `Robot` bundles what differs between the ant and the humanoid: which MJCF file Brax ships
for it, which of its geoms touch the floor, maze walls and props, how big a maze cell is
for it, when it counts as fallen, how much reset noise it gets, the per-backend
integration settings, and how its state vector is read off a pipeline state. The numbers
are the paper's code's (shared PAPER_TASKS.md; docs/paper_fidelity.md lists them).

State vectors always START with the full generalised position q, so the torso x, y (and z)
of the free root joint sit at q[0:3] = state[0:3]; goal indices are therefore indices into
q as well as into the state (the envs rely on this to place the robot at a goal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mujoco
from brax import actuator, base

# The MJX solver settings of Brax's (and the paper's) ant and humanoid.
_MJX_SOLVER = {
    "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
    "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
    "opt.iterations": 1,
    "opt.ls_iterations": 4,
}


@dataclasses.dataclass(frozen=True)
class BackendSettings:
    n_frames: int  # physics substeps per env step
    timestep: float | None = None  # None keeps the MJCF's <option timestep>
    gear: tuple[float, ...] | None = None  # None keeps the MJCF's actuator gears


def _ant_state(sys: base.System, ps: base.State, ctrl: jax.Array, maximal: bool) -> jax.Array:
    """q (torso x,y,z, quaternion, 8 hinge angles, then any prop q) and qd."""
    del sys, ctrl, maximal
    return jnp.concatenate([ps.q, ps.qd])


def _humanoid_state(sys: base.System, ps: base.State, ctrl: jax.Array, maximal: bool) -> jax.Array:
    """The paper's humanoid features (Brax's humanoid observation with the torso x, y kept).

    q, qd, then per link (the target body included when the model has it) the inertia
    about the whole-body centre of mass (3x3 + mass), the link's mass-weighted linear and
    its angular velocity at its own centre of mass, and the joint torques the actuators
    apply. On the maximal-coordinate backends (`maximal`: spring, positional) the inertia
    is the one they simulate, scaled by the model's spring_inertia_scale and
    spring_mass_scale (for the humanoid: unit inertia diagonals, masses kept).
    """
    inertia = sys.link.inertia
    if maximal:
        diag = jax.vmap(jnp.diagonal)(inertia.i) ** (1 - sys.spring_inertia_scale)
        inertia = inertia.replace(
            i=jax.vmap(jnp.diag)(diag), mass=inertia.mass ** (1 - sys.spring_mass_scale)
        )
    total_mass = jnp.sum(inertia.mass)
    link_com = ps.x.vmap().do(inertia.transform)  # each link's centre-of-mass frame
    com = jnp.sum(inertia.mass[:, None] * link_com.pos, axis=0) / total_mass
    about_com = link_com.replace(pos=link_com.pos - com).vmap().do(inertia)
    com_inertia = jnp.concatenate(
        [about_com.i.reshape(about_com.i.shape[0], -1), inertia.mass[:, None]], axis=1
    )
    offset = base.Transform.create(pos=link_com.pos - ps.x.pos)
    link_vel = offset.vmap().do(ps.xd)
    com_velocity = jnp.concatenate(
        [inertia.mass[:, None] * link_vel.vel / total_mass, link_vel.ang], axis=1
    )
    torque = actuator.to_tau(sys, ctrl, ps.q, ps.qd)
    return jnp.concatenate(
        [ps.q, ps.qd, com_inertia.ravel(), com_velocity.ravel(), torque]
    )


@dataclasses.dataclass(frozen=True)
class Robot:
    name: str
    asset: str  # file under brax/envs/assets
    cell_size: float  # maze cell edge in metres
    healthy_z: tuple[float, float]  # torso height outside this range ends the episode
    goal_dims: int  # 2: goal = torso x, y; 3: torso x, y, z
    goal_height: float | None  # z of every goal when goal_dims == 3
    q_noise: float  # uniform +- noise on q at reset
    qd_noise: float  # noise scale on qd at reset (normal(0, s))
    floor_geoms: tuple[str, ...] | None  # geoms that touch the floor; None: every body geom
    wall_geoms: tuple[str, ...] | None  # geoms that touch walls; None: every body geom
    prop_geoms: bool  # whether props (ball, block) can touch this robot
    backends: dict[str, BackendSettings]
    state_fn: Callable[[base.System, base.State, jax.Array, bool], jax.Array]
    state_size: Callable[[base.System], int]  # len(state_fn(...)) without tracing
    # The paper's model has a `target` body (two slide joints, no contacts) at the goal.
    target_height: float | None = None  # its z; None: no target body


ANT = Robot(
    name="ant",
    asset="ant.xml",
    cell_size=4.0,
    healthy_z=(0.2, 1.0),
    goal_dims=2,
    goal_height=None,
    q_noise=0.1,
    qd_noise=0.1,
    floor_geoms=("left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom"),
    # The paper's maze ant: the torso sphere, the four hip capsules and the four feet.
    wall_geoms=(
        "torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom",
        "left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom",
    ),
    prop_geoms=True,
    backends={
        "spring": BackendSettings(n_frames=10, timestep=0.005),
        "positional": BackendSettings(n_frames=10, timestep=0.005, gear=(200.0,) * 8),
        "generalized": BackendSettings(n_frames=5),
        "mjx": BackendSettings(n_frames=5),
    },
    state_fn=_ant_state,
    state_size=lambda sys: sys.q_size() + sys.qd_size(),
)

_HUMANOID_SPRING_GEAR = (350.0,) * 11 + (100.0,) * 6

HUMANOID = Robot(
    name="humanoid",
    asset="humanoid.xml",
    cell_size=2.0,
    healthy_z=(1.0, 2.0),
    goal_dims=3,
    goal_height=1.25,
    q_noise=0.0,  # the paper's humanoid starts exactly at its initial pose
    qd_noise=0.0,
    # The paper's humanoid.xml gives every geom contype 1: every limb touches the floor.
    floor_geoms=None,
    # Walls are 1 m high and the torso walks above them: every limb collides with them
    # (the paper's deep agents vault them).
    wall_geoms=None,
    prop_geoms=False,
    backends={
        "spring": BackendSettings(n_frames=10, timestep=0.0015, gear=_HUMANOID_SPRING_GEAR),
        "positional": BackendSettings(n_frames=10, timestep=0.0015, gear=_HUMANOID_SPRING_GEAR),
        "generalized": BackendSettings(n_frames=5),
        "mjx": BackendSettings(n_frames=5),
    },
    state_fn=_humanoid_state,
    # q, qd, 10 inertia numbers and 6 velocities per link, one torque per dof:
    # 26 + 25 + 12 x 16 + 25 = 268 with the target body, 246 without
    state_size=lambda sys: sys.q_size() + 2 * sys.qd_size() + 16 * sys.num_links(),
    target_height=1.25,
)

ROBOTS = {r.name: r for r in (ANT, HUMANOID)}


# Maximal-coordinate backends: they need a smaller timestep to stay stable (the robots'
# `backends` settings, Brax's and the paper's numbers).
MAXIMAL = ("spring", "positional")


def configure_backend(
    sys: base.System, robot: Robot, backend: str, xml_timestep: bool = False
) -> tuple[base.System, int]:
    """Apply the robot's integration settings for `backend`; returns (sys, n_frames).
    `xml_timestep` keeps the model's own timestep on every backend (the paper's open
    humanoid: brax 0.10.1 ignored its 0.0015 s override; envs/locomotion/params.py)."""
    settings = robot.backends[backend]
    if settings.timestep is not None and not xml_timestep:
        sys = sys.tree_replace({"opt.timestep": settings.timestep})
    if settings.gear is not None:
        gear = sys.actuator.gear.at[: len(settings.gear)].set(jnp.asarray(settings.gear))
        sys = sys.replace(actuator=sys.actuator.replace(gear=gear))
    if backend == "mjx":
        sys = sys.tree_replace(_MJX_SOLVER)
    return sys, settings.n_frames
