"""The locomotion physics as the paper's code has it: every wall contact, the target's range.

The reference is MuJoCo's own collision (C `mj_collision`, every wall of the layout in
place, no broad-phase cap, the bodies where the env's state has them): the paper's code
caps nothing. Our env steps a window of wall slots with MJX's broad phase capped
(envs/locomotion/mjcf.py, `broad_phase_cap`); these tests drive robots into walls and
corners and check that no contact is lost on the way (MJX's own narrow phase, which the
paper's code shares, misses a few near wall edges: counted and bounded).

One compiled program per Scene (ant mazes, humanoid mazes, ant_push; the maze is data)
runs a batch of envs for STEPS steps from given poses and returns every state and the
contacts the env's next step resolves. The humanoid's program runs twice: driven into
walls, then a corner rollout under fixed actions, which a second program repeats on the
reference model (every wall, no cap). The humanoid's target body rides along in both runs,
placed at the goals of every humanoid maze.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from envs.locomotion import make
from envs.locomotion.mjcf import TARGET_JOINT_RANGE

STEPS = 100
DIRECTIONS = np.array([(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4], np.float32)
DEEP = 1e-3  # compare contacts deeper than 1 mm (MJX's narrow phase may miss sub-mm ones)
# Per scene: the envs (mazes) it serves, and the torso speeds (m/s) robots are driven at.
SCENES = {
    "ant_mazes": (["ant_u_maze", "ant_u4_maze", "ant_u5_maze", "ant_big_maze", "ant_hardest_maze"], [3.0]),
    "humanoid_mazes": (["humanoid_u_maze", "humanoid_big_maze", "humanoid_hardest_maze"], [1.0, 2.0]),
    "ant_push": (["ant_push"], [1.0, 3.0]),
}
CORNER_START = 40  # the corner rollout starts from the driven humanoids' state at this step


def _run(scene, with_contacts, task, q, qd, velocity, actions):
    """One env (vmapped): STEPS steps of `actions` from (q, qd); while `velocity` is non-zero
    the torso's x, y velocity is forced to it before each step (driving it into walls)."""
    goal = jnp.zeros((len(scene.goal_indices),), jnp.float32)
    state = scene.init(task, q, qd, goal)
    drive = jnp.any(velocity != 0)

    def body(state, action):
        physics = state.physics
        pushed = scene.init(task, physics.q, physics.qd.at[:2].set(velocity), goal)
        state = jax.tree.map(lambda a, b: jnp.where(drive, a, b), pushed, state)
        state = scene.step(task, state, action)
        x = state.physics.x
        out = {"q": state.physics.q, "qd": state.physics.qd, "pos": x.pos, "rot": x.rot}
        if with_contacts:
            c = scene.contacts(task, state.physics)
            out.update(geom=c.geom, dist=c.dist, geom_pos=scene.system_at(task, state.physics.q[:2]).geom_pos)
        return state, out

    return jax.lax.scan(body, state, actions)[1]


@functools.lru_cache(maxsize=None)
def _program(scene, with_contacts=True):
    return jax.jit(jax.vmap(functools.partial(_run, scene, with_contacts)))


def _stack(tasks):
    return jax.tree.map(lambda *x: jnp.stack(x), *tasks)


# -- MuJoCo's full collision as the reference ------------------------------------------------


def _key(model, geom, pos):
    """A geom's identity across models: its name, or for a wall (a world-body box) where it stands."""
    if model.geom_bodyid[geom] == 0 and model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_BOX:
        return ("wall", round(float(pos[0]), 2), round(float(pos[1]), 2))
    return model.geom(geom).name


def _rotations(quat):
    """(n, 4) quaternions (w, x, y, z) -> (n, 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(quat, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(quat.shape[:-1] + (3, 3))


def _mujoco_contacts(model, data, pos, rot):
    """(geom key, geom key) pairs that MuJoCo's collision finds deeper than DEEP with the
    bodies where the env's state has them (link positions and rotations: the spring
    pipeline's bodies are not exactly where forward kinematics of its q would put them)."""
    xmat = np.concatenate([np.eye(3)[None], _rotations(rot)])
    xpos = np.concatenate([np.zeros((1, 3)), pos])
    data.xpos[:], data.xquat[1:], data.xmat[:] = xpos, rot, xmat.reshape(-1, 9)
    data.xipos[:] = xpos + np.einsum("bij,bj->bi", xmat, model.body_ipos)
    data.ximat[:] = (xmat @ _rotations(model.body_iquat)).reshape(-1, 9)
    body = model.geom_bodyid
    data.geom_xpos[:] = xpos[body] + np.einsum("gij,gj->gi", xmat[body], model.geom_pos)
    data.geom_xmat[:] = (xmat[body] @ _rotations(model.geom_quat)).reshape(-1, 9)
    mujoco.mj_collision(model, data)
    found = set()
    for c in data.contact[: data.ncon]:
        if c.dist < -DEEP:
            found.add(frozenset((_key(model, c.geom1, data.geom_xpos[c.geom1]),
                                 _key(model, c.geom2, data.geom_xpos[c.geom2]))))
    return found


def _env_geom(model, key, geom_pos):
    """The env model's geom with that key at this state (a wall: the slot placed there)."""
    if isinstance(key, tuple):
        walls = np.flatnonzero((model.geom_bodyid == 0) & (model.geom_type == mujoco.mjtGeom.mjGEOM_BOX))
        walls = walls[geom_pos[walls, 2] > 0]  # not the slots parked below the floor
        at = walls[np.all(np.abs(geom_pos[walls, :2] - key[1:]) < 1e-3, axis=1)]
        return int(at[0]) if len(at) else -1
    return model.geom(key).id


def _env_status(model, pair, geom, dist, geom_pos):
    """How the env's step (MJX: window, broad phase, narrow phase) saw a reference pair:
    'touching', 'examined' (its narrow phase ran and found no contact), or 'lost' (the pair
    never reached the narrow phase: a wall missing from the window, or culled)."""
    ids = sorted(_env_geom(model, key, geom_pos) for key in pair)
    rows = np.all(np.sort(geom, axis=1) == ids, axis=1)
    if not rows.any():
        return "lost"
    return "touching" if dist[rows].min() < 0 else "examined"


def _is_wall_pair(pair):
    return any(isinstance(k, tuple) for k in pair)


# -- the rollouts (cached: several tests read them) -----------------------------------------


@functools.lru_cache(maxsize=None)
def _humanoid_goals() -> np.ndarray:
    """(x, y) of every goal cell of every humanoid maze (its training layout; the _eval
    layouts' goal cells are among them)."""
    goals = {tuple(cell * 2.0) for env_id in SCENES["humanoid_mazes"][0] for cell in make(env_id).maze.goal_cells}
    return np.array(sorted(goals), np.float32)


def _with_targets(q, first):
    """Place the target bodies at goals first, first + 1, ... and, in the slots left over,
    at the goals farthest out moved 0.5 m further (where env.params.goal_jitter = 0.25
    may put a goal: beyond 20 m in the largest maze). The target touches nothing, so the
    maze its env runs in does not matter to it."""
    goals = _humanoid_goals()
    exact = goals[first:first + q.shape[0]]
    far = goals[np.argsort(-np.abs(goals).max(axis=1), kind="stable")][: q.shape[0] - len(exact)]
    return q.at[:, -2:].set(jnp.asarray(np.concatenate([exact, far + 0.5 * np.sign(far)])))


@functools.lru_cache(maxsize=None)
def driven(name):
    """Robots of every maze of a scene driven into walls and corners in 8 directions at each
    speed, under random actions. Returns the envs, each batch entry's maze index, the
    batched task data, the initial q, and the trajectories."""
    ids, speeds = SCENES[name]
    envs = [make(i) for i in ids]
    scene = envs[0].scene
    maze = np.repeat(np.arange(len(ids)), len(DIRECTIONS) * len(speeds))
    velocity = np.concatenate([DIRECTIONS * s for s in speeds] * len(ids))
    tasks = _stack([envs[m].task for m in maze])
    q, qd, _ = jax.vmap(scene.sample_episode)(tasks, jax.random.split(jax.random.PRNGKey(0), len(maze)))
    if scene.target is not None:
        q = _with_targets(q, 0)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (len(maze), STEPS, scene.action_size), minval=-1, maxval=1)
    out = _program(scene)(tasks, q, qd, jnp.asarray(velocity), actions)
    return envs, maze, tasks, np.asarray(q), jax.tree.map(np.asarray, out)


@functools.lru_cache(maxsize=None)
def corner_rollouts():
    """The driven humanoids from step CORNER_START on (pressed into walls and corners), 100
    steps of fixed actions without driving, the target bodies moved on to the goals the
    driven run left out. Returns the maze index, initial q and actions, and trajectories."""
    envs, maze, tasks, _, out = driven("humanoid_mazes")
    scene = envs[0].scene
    n = len(maze)
    q = _with_targets(jnp.asarray(out["q"][:, CORNER_START]), n)
    qd = jnp.asarray(out["qd"][:, CORNER_START])
    actions = jax.random.uniform(jax.random.PRNGKey(2), (n, STEPS, scene.action_size), minval=-1, maxval=1)
    ours = _program(scene)(tasks, q, qd, jnp.zeros((n, 2)), actions)
    return maze, q, qd, actions, jax.tree.map(np.asarray, ours)


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENES))
def test_every_contact_of_mujocos_full_collision_is_found(name):
    """Every contact deeper than 1 mm that MuJoCo finds with every wall in place and nothing
    culled went through the env's narrow phase: no wall was missing from the window and the
    broad phase culled no touching pair. MJX's narrow phase itself (capsule-box) misses a
    few that C MuJoCo finds, near a wall's edges; the paper's code has those too (it runs
    the same MJX collision), so they are counted and bounded, not forbidden."""
    envs, maze, _, _, out = driven(name)
    sys_model = envs[0].scene.sys.mj_model
    models = [env.render_system().mj_model for env in envs]  # every wall in place, no cap
    datas = [mujoco.MjData(m) for m in models]
    lost, narrow_misses, wall_contacts, corners = [], 0, 0, 0
    for e in range(len(maze)):
        model, data = models[maze[e]], datas[maze[e]]
        for t in range(STEPS):
            reference = _mujoco_contacts(model, data, out["pos"][e, t], out["rot"][e, t])
            walls = {k for pair in reference for k in pair if isinstance(k, tuple)}
            wall_contacts += sum(_is_wall_pair(pair) for pair in reference)
            corners += len(walls) >= 2
            for pair in reference:
                status = _env_status(sys_model, pair, out["geom"][e, t], out["dist"][e, t], out["geom_pos"][e, t])
                if status == "lost":
                    lost.append((envs[maze[e]].spec.env_id, e, t, sorted(map(str, pair))))
                narrow_misses += status == "examined"
    # The robots really were pressed into walls, and into corners (two walls at once).
    assert wall_contacts > len(maze) * STEPS // 4 and corners > 20, (wall_contacts, corners)
    assert not lost, f"{len(lost)} of {wall_contacts} wall contacts never reached the narrow phase, e.g. {lost[:3]}"
    print(f"\n{name}: {len(maze) * STEPS} states, {corners} in corners, {wall_contacts} wall contacts, {narrow_misses} missed by MJX's narrow phase")
    assert narrow_misses <= 0.03 * wall_contacts, (narrow_misses, wall_contacts)


def test_the_broad_phase_cap_is_the_geometric_bound():
    """max_geom_pairs = the most (geom, wall or block) pairs of one group whose bounding
    spheres can overlap at once: humanoid 12 capsules (radius <= 0.23 m) x the 2 x 2 walls
    (radius 1.5 m, 2 m cells) within reach of each; ant mazes 5 spheres x 2 x 2 walls
    (radius 3 m, 4 m cells); ant_push 4 hips x 2 x 2 walls + 12 capsules x the block.
    No cap where no group has more pairs than that."""
    caps = {name: make(SCENES[name][0][0]).scene.max_geom_pairs for name in SCENES}
    assert caps == {"ant_mazes": 20, "humanoid_mazes": 48, "ant_push": 28}
    for env_id in ("ant", "ant_ball", "humanoid"):
        assert make(env_id).scene.max_geom_pairs is None


def test_a_humanoid_corner_rollout_agrees_with_the_uncapped_model():
    """From humanoids pressed into walls and corners of the U maze, 100 steps of fixed
    actions: the env (wall window, capped) and the reference (every wall, no cap) agree.

    The two sum the same contact forces in different orders (the broad phase reorders the
    pairs it keeps), so they differ by rounding (1e-7 m) from the first step; in a
    contact-rich rollout that can grow to about 1e-3 m in 100 steps. A dropped contact moves
    bodies by centimetres to metres (the old cap of 8 pairs: 0.04-2.8 m in 3 of these 16)."""
    envs, *_ = driven("humanoid_mazes")
    maze, q, qd, actions, ours = corner_rollouts()
    u = np.flatnonzero(maze == 0)  # the U maze's envs
    reference_scene = envs[0].scene.with_system(envs[0].render_system())
    reference = _program(reference_scene, with_contacts=False)(
        _stack([envs[0].task] * len(u)), q[u], qd[u], jnp.zeros((len(u), 2)), actions[u]
    )
    drift = np.abs(ours["pos"][u] - np.asarray(reference["pos"])).max(axis=(1, 2, 3))  # per rollout, metres
    assert np.median(drift) < 1e-4 and drift.max() < 1e-2, drift
    # ... and the rollouts pressed on walls all along: corner rollouts, not ones in the open.
    touching = [(ours["dist"][e, t] < 0).sum() > 0 for e in u for t in range(STEPS)]
    assert np.mean(touching) > 0.5


def test_the_target_body_stays_at_every_goal_of_every_humanoid_maze():
    """The target's slide joints have the paper's range (maze models +-100 m, open humanoid
    +-20 m): placed at any goal it stays there. With +-20 m a goal beyond 20 m (goal jitter
    in the hardest maze, whose goals reach y = 20) is flung away by the joint limit."""
    _, _, _, q0, out = driven("humanoid_mazes")
    _, q1, _, _, corner = corner_rollouts()
    placed = np.concatenate([q0[:, -2:], np.asarray(q1)[:, -2:]])
    assert {tuple(g) for g in _humanoid_goals()} <= {tuple(g) for g in placed}
    assert np.abs(placed).max() > 20  # some beyond the +-20 m of the open humanoid's model
    target_q = np.concatenate([out["q"][:, :, -2:], corner["q"][:, :, -2:]])
    np.testing.assert_allclose(target_q, np.broadcast_to(placed[:, None], target_q.shape), atol=1e-4)
    assert TARGET_JOINT_RANGE == {"maze": 100.0, "open": 20.0}
    for env_id, kind in (("humanoid_hardest_maze", "maze"), ("humanoid", "open")):
        model = make(env_id).scene.sys.mj_model
        for joint in ("target_x", "target_y"):
            np.testing.assert_array_equal(model.joint(joint).range, [-TARGET_JOINT_RANGE[kind], TARGET_JOINT_RANGE[kind]])
