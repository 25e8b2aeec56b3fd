"""Brax locomotion and navigation envs (envs.locomotion).

Compiling one Brax env step takes tens of seconds on a CPU, so the file is built around
few compiled programs: envs that share a `Scene` (all ant mazes and their _eval variants;
all humanoid mazes) differ only in their `TaskData`, and `Programs` jits ONE function
per Scene that takes the TaskData as an argument. That function does everything the tests
need from physics in one go: reset, the goal-placement checks, and 100 steps of either
random actions or a scripted torso velocity (to drive the robot into a wall or the block).
Nine such programs in all (six scenes on spring, ant on three other backends), plus tiny
physics-free goal samplers. The end-to-end `crl-train` run starts in the background when
the module starts, so its compiling overlaps with the tests'.
"""

from __future__ import annotations

import functools
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from envs import registry
from envs.locomotion import ENV_IDS, EVAL_IDS, TRAINING_IDS, make
from envs.locomotion.scene import BALL_GOAL_DISTANCE, BALL_START_DISTANCE

REPO = pathlib.Path(__file__).resolve().parents[1]
N_ENVS = 2
N_STEPS = 100
BACKENDS = ["spring", "generalized", "positional", "mjx"]
# The tests run few steps: LLVM's optimisations cost more compile time (about 40%) than
# they save at run time. Same program (HLO), only less optimised machine code.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


# -- one compiled program per Scene ------------------------------------------------------


def _rollout(template, task, keys, drive_velocity, drive):
    """Per env: reset, placement checks, then N_STEPS steps; `drive` (per env, 0/1) swaps
    the random actions for zero actions plus a torso velocity forced every step."""
    env = template.with_task(task)

    def one(key, velocity, driven):
        start = env.reset(key)
        goal = start.goal
        # Placed at the goal, and 1 m off it (vmapped: one pipeline init in the program).
        targets = jnp.stack([goal, goal.at[0].add(1.0)])
        at_goal, off_goal = jax.vmap(env.set_goal_coords, in_axes=(None, 0))(start, targets).metrics["success"]
        torso_at, torso_off = jax.vmap(env.set_torso_xy, in_axes=(None, 0))(start, targets[:, :2]).metrics["success"]
        checks = {"at_goal": at_goal, "one_metre_off": off_goal,
                  "torso_at_goal": torso_at, "torso_one_metre_off": torso_off}

        def body(state, k):
            pushed = env.set_torso_velocity(state, velocity)
            state = jax.tree.map(lambda a, b: jnp.where(driven > 0, a, b), pushed, state)
            action = jax.random.uniform(k, (env.action_size,), minval=-1.0, maxval=1.0)
            state = env.step(state, jnp.where(driven > 0, 0.0, action))
            out = {
                "obs": state.obs,
                "q": state.physics.q,
                "links": state.physics.x.pos,
                "done": state.done,
                "dist": state.metrics["dist"],
                "success": state.metrics["success"],
            }
            return state, out

        _, traj = jax.lax.scan(body, start, jax.random.split(key, N_STEPS))
        return {"start": start.obs, "goal": goal, "checks": checks, "traj": traj}

    return jax.vmap(one)(keys, drive_velocity, drive)


class Programs:
    """Caches one jitted `_rollout` per Scene, and the results per (env id, backend)."""

    def __init__(self):
        self._jitted = {}
        self._results = {}

    def run(self, env_id, backend="spring", velocity=None, seed=0):
        cache_key = (env_id, backend, velocity, seed)
        if cache_key not in self._results:
            env = make(env_id, backend=backend)
            if id(env.scene) not in self._jitted:
                self._jitted[id(env.scene)] = jax.jit(
                    functools.partial(_rollout, env), compiler_options=FAST_COMPILE
                )
            drive = np.zeros((N_ENVS,), np.float32) if velocity is None else np.ones((N_ENVS,), np.float32)
            vel = np.zeros((N_ENVS, 2), np.float32)
            if velocity is not None:
                vel[:, : len(velocity)] = velocity
            keys = jax.random.split(jax.random.PRNGKey(seed), N_ENVS)
            out = self._jitted[id(env.scene)](env.task, keys, jnp.asarray(vel), jnp.asarray(drive))
            self._results[cache_key] = (env, jax.tree.map(np.asarray, out))
        return self._results[cache_key]


@pytest.fixture(scope="module")
def programs():
    return Programs()


# -- ids, specs and errors (no compilation) -----------------------------------------------


def test_ids_match_the_registry():
    assert sorted(ENV_IDS) == sorted(registry.ids_of("envs.locomotion"))
    assert set(EVAL_IDS.values()) <= set(ENV_IDS)
    assert registry.family_of("ant_u_maze") == "envs.locomotion"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec(env_id):
    env = registry.make(env_id)
    spec = env.spec
    assert spec.env_id == env_id
    assert spec.episode_length == 1000
    assert spec.success_radius == 0.5 and spec.success_radius_easy == 2.0
    assert max(spec.goal_indices) < spec.state_dim
    robot = "humanoid" if env_id.startswith("humanoid") else "ant"
    if env_id == "ant_ball":
        assert spec.goal_indices == (15, 16)  # the ball's x, y
    else:
        assert spec.goal_indices == ((0, 1, 2) if robot == "humanoid" else (0, 1))
    expected = {"ant": 29, "ant_ball": 42, "ant_push": 42}
    assert spec.state_dim == expected.get(env_id, 268 if robot == "humanoid" else 29)
    assert spec.action_size == (17 if robot == "humanoid" else 8)
    # The paper's control steps: ant 0.005 x 10; open humanoid 0.003 x 10 (brax 0.10.1
    # ignored the 0.0015 override); humanoid mazes 0.0015 x 10.
    dt = {"ant": 0.05, "humanoid": 0.03}.get(env_id, 0.015 if robot == "humanoid" else 0.05)
    assert env.dt == dt
    assert make(env_id, episode_length=50).spec.episode_length == 50


def test_bad_parameters_fail_with_one_line_naming_the_key():
    with pytest.raises(KeyError) as err:
        make("ant", backnd="spring")
    message = str(err.value.args[0])
    assert message.startswith("env.params.backnd:") and "backend" in message and "episode_length" in message
    assert "\n" not in message
    with pytest.raises(ValueError) as err:
        make("ant", backend="warp")
    message = str(err.value.args[0])
    assert message.startswith("env.params.backend:")
    assert all(b in message for b in BACKENDS) and "\n" not in message
    with pytest.raises(KeyError, match="env.id"):
        make("ant_nowhere")
    with pytest.raises(ValueError, match="env.episode_length"):
        make("ant", episode_length=0)


def test_render_system_has_every_wall():
    env = make("ant_u_maze")
    walls = int(env.maze.walls.sum())
    physics_geoms = env.scene.sys.ngeom
    assert env.render_system().ngeom == physics_geoms - 9 + walls  # 9 window slots -> all walls


# -- every id: reset + 100 jitted, vmapped random steps --------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rollout_is_finite_and_goals_are_measured(programs, env_id):
    env, out = programs.run(env_id)
    spec = env.spec
    traj = out["traj"]
    assert out["start"].shape == (N_ENVS, spec.obs_size)
    assert traj["obs"].shape == (N_ENVS, N_STEPS, spec.obs_size)
    assert np.isfinite(out["start"]).all() and np.isfinite(traj["obs"]).all()
    gi = np.asarray(spec.goal_indices)
    # obs = (state, goal); the goal coordinates of the state are q entries (torso or ball).
    np.testing.assert_allclose(traj["obs"][..., gi], traj["q"][..., gi], atol=1e-6)
    np.testing.assert_allclose(traj["obs"][..., spec.state_dim:], np.broadcast_to(out["goal"][:, None], traj["obs"][..., spec.state_dim:].shape))
    dist = np.linalg.norm(traj["obs"][..., gi] - out["goal"][:, None], axis=-1)
    np.testing.assert_allclose(traj["dist"], dist, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(traj["success"], (dist < 0.5).astype(np.float32))
    assert set(np.unique(traj["done"])) <= {0.0, 1.0}

    checks = out["checks"]
    np.testing.assert_array_equal(checks["at_goal"], 1.0)
    np.testing.assert_array_equal(checks["one_metre_off"], 0.0)
    if env_id != "ant_ball":  # there the goal measures the ball, not the torso
        np.testing.assert_array_equal(checks["torso_at_goal"], 1.0)
        np.testing.assert_array_equal(checks["torso_one_metre_off"], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_reset_and_step_the_ant(programs, backend):
    env, out = programs.run("ant", backend=backend)
    assert env.backend == backend
    assert np.isfinite(out["traj"]["obs"]).all()
    assert out["traj"]["obs"].shape == (N_ENVS, N_STEPS, env.obs_size)
    # The ant moved (its joints at least): the physics really stepped.
    assert np.abs(out["traj"]["q"][:, -1, 7:15] - out["traj"]["q"][:, 0, 7:15]).max() > 1e-3


def test_reset_and_step_return_identical_dtypes():
    """Otherwise the first step after a reset recompiles (weak types)."""
    env = make("ant_u_maze")
    reset = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    stepped = jax.eval_shape(env.step, reset, jnp.zeros((env.action_size,)))
    describe = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)  # noqa: E731
    assert describe(reset) == describe(stepped)


# -- starts and goals ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _sampler(scene):
    """One jitted, vmapped `sample_episode` per Scene (task as data): no physics, cheap."""
    return jax.jit(
        jax.vmap(lambda task, key: scene.sample_episode(task, key), in_axes=(None, 0)),
        compiler_options=FAST_COMPILE,
    )


def _episodes(env, n=2000, seed=1):
    q, _, goal = _sampler(env.scene)(env.task, jax.random.split(jax.random.PRNGKey(seed), n))
    return np.asarray(q), np.asarray(goal)


def _cell_of(xy, cell):
    return np.floor(xy / cell + 0.5).astype(int)


MAZE_IDS = [i for i in ENV_IDS if "maze" in i] + ["ant_push"]

# The paper's layouts (shared PAPER_FACTS.md) and evaluation goal cells (PAPER_TASKS.md),
# written out here as the oracle: rows top to bottom, R the start, G the goal cells.
PAPER_LAYOUTS = {
    "u_maze": ["#####", "#RGG#", "###G#", "#GGG#", "#####"],
    "big_maze": ["########", "#RG##GG#", "#GG#GGG#", "##GGG###", "#GG#GGG#", "#G#GG#G#",
                 "#GGG#GG#", "########"],
    "hardest_maze": ["############", "#RGGG#GGGGG#", "#G##G#G#G#G#", "#GGGGGG#GGG#",
                     "#G####G###G#", "#GG#G#GGGGG#", "##G#G#G#G###", "#GG#GGG#GGG#",
                     "############"],
    "u4_maze": ["#####", "#GGG#", "#R#G#", "###G#", "#G#G#", "#GGG#", "#####"],
    "u5_maze": ["########", "#GGGGGG#", "#R####G#", "######G#", "#G####G#", "#GGGGGG#", "########"],
    # U2, U3: the walls of the paper code's stitching mazes (envs/ant_maze_generalization.py);
    # as plain mazes ours take every cell but R as a goal, as the U maze, and evaluate on the far arm
    "u2_maze": ["######", "#RGGG#", "####G#", "#GGGG#", "######"],
    "u3_maze": ["#######", "#RGGGG#", "#####G#", "#GGGGG#", "#######"],
}
_BIG_EVAL_ANT = {(1, 5), (1, 6), (2, 6), (5, 3), (5, 6), (6, 2), (6, 3), (6, 5), (6, 6)}
PAPER_EVAL_GOALS = {
    "ant_u_maze_eval": {(3, 1), (3, 2), (3, 3)},
    "ant_u4_maze_eval": {(4, 1), (5, 1), (5, 2), (5, 3)},
    "ant_u2_maze_eval": {(3, 1), (3, 2), (3, 3), (3, 4)},
    "ant_u3_maze_eval": {(3, 1), (3, 2), (3, 3), (3, 4), (3, 5)},
    "ant_u5_maze_eval": {(4, 1), (4, 6), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (5, 6)},
    "ant_big_maze_eval": _BIG_EVAL_ANT,
    "humanoid_u_maze_eval": {(3, 1), (3, 2), (3, 3)},
    "humanoid_big_maze_eval": _BIG_EVAL_ANT | {(2, 5)},  # the humanoid's keeps (2, 5)
}


def _paper_cells(rows, char):
    return {(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == char}


def _paper_task(env_id):
    """(start cell, goal cells, cell size) of a maze id as the paper defines it."""
    base = env_id.removesuffix("_eval")
    robot, maze = base.split("_", 1)
    rows = PAPER_LAYOUTS[maze]
    goals = PAPER_EVAL_GOALS.get(env_id, _paper_cells(rows, "G"))  # hardest: training goals
    return _paper_cells(rows, "R"), goals, 4.0 if robot == "ant" else 2.0


@pytest.mark.parametrize("env_id", [i for i in MAZE_IDS if i != "ant_push"])
def test_maze_starts_and_goals_are_the_papers_cell_centres(env_id):
    env = make(env_id)
    start_cells, goal_cells, cell = _paper_task(env_id)
    assert env.scene.robot.cell_size == cell
    np.testing.assert_array_equal(env.maze.walls, np.array([[c == "#" for c in r] for r in
                                  PAPER_LAYOUTS[env_id.removesuffix("_eval").split("_", 1)[1]]]))
    q, goal = _episodes(env)
    # Goals: exactly on a goal cell's centre, and every goal cell drawn over 2000 resets.
    drawn = {tuple(c) for c in _cell_of(goal[:, :2], cell)}
    assert drawn == goal_cells
    np.testing.assert_array_equal(goal[:, :2], _cell_of(goal[:, :2], cell) * cell)
    # Starts: the R cell's centre (ant: +- 0.1 reset noise; humanoid: none).
    assert {tuple(c) for c in _cell_of(q[:, :2], cell)} == start_cells
    offset = q[:, :2] - _cell_of(q[:, :2], cell) * cell
    if env_id.startswith("humanoid"):
        np.testing.assert_array_equal(offset, 0.0)
        np.testing.assert_array_equal(goal[:, 2], 1.25)
    else:
        assert np.abs(offset).max() <= 0.1 and np.abs(offset).max() > 0.09


def test_goal_jitter_spreads_goals_around_the_centres():
    env = make("ant_u4_maze_eval", goal_jitter=0.125)
    _, goal = _episodes(env)
    offset = goal - _cell_of(goal, 4.0) * 4.0
    assert 0.45 < np.abs(offset).max() <= 0.5  # +- 1/8 of a 4 m cell
    assert {tuple(c) for c in _cell_of(goal, 4.0)} == PAPER_EVAL_GOALS["ant_u4_maze_eval"]


def test_ant_push_starts_and_goals():
    env = make("ant_push")
    cell = env.scene.robot.cell_size
    q, goal = _episodes(env)
    assert {tuple(c) for c in _cell_of(q[:, :2], cell)} == {tuple(env.maze.start_cell)}
    assert {tuple(c) for c in _cell_of(goal, cell)} == {tuple(c) for c in env.maze.goal_cells}
    np.testing.assert_array_equal(goal, _cell_of(goal, cell) * cell)


def test_open_task_goals():
    _, goal = _episodes(make("ant"))
    np.testing.assert_allclose(np.linalg.norm(goal, axis=1), 10.0, rtol=1e-5)
    _, goal = _episodes(make("humanoid"))
    dist = np.linalg.norm(goal[:, :2], axis=1)
    assert dist.min() >= 1.0 and dist.max() <= 5.0 and dist.max() - dist.min() > 3.5
    np.testing.assert_array_equal(goal[:, 2], 1.25)
    q, goal = _episodes(make("ant_ball"))
    ball = q[:, 15:17]
    d_ball = np.linalg.norm(ball - q[:, :2], axis=1)
    d_goal = np.linalg.norm(goal - ball, axis=1)
    assert BALL_START_DISTANCE[0] - 0.2 <= d_ball.min() and d_ball.max() <= BALL_START_DISTANCE[1] + 0.2
    assert BALL_GOAL_DISTANCE[0] - 1e-4 <= d_goal.min() and d_goal.max() <= BALL_GOAL_DISTANCE[1] + 1e-4


# -- the paper's humanoid and the switches that remove its quirks ---------------------------


def _geom_bits(env):
    m = env.scene.sys.mj_model
    return {m.geom(i).name: (int(m.geom_contype[i]), int(m.geom_conaffinity[i])) for i in range(m.ngeom)}


@pytest.mark.parametrize("env_id", ["humanoid", "humanoid_u_maze"])
def test_every_humanoid_geom_touches_the_floor_and_the_target_nothing(env_id):
    env = make(env_id)
    bits = _geom_bits(env)
    assert bits.pop("target") == (0, 0)
    floor_affinity = bits.pop("floor")[1]
    body = {n: b for n, b in bits.items() if not n.startswith("wall_slot_")}
    assert len(body) == 17 and all(contype & floor_affinity for contype, _ in body.values())
    if env_id.endswith("maze"):  # ... and every one of them is stopped by the walls
        wall_type = bits["wall_slot_0"][0]
        assert all(affinity & wall_type for _, affinity in body.values())


def test_ant_maze_walls_stop_torso_hips_and_feet_only():
    bits = _geom_bits(make("ant_u_maze"))
    wall_type = bits["wall_slot_0"][0]
    stopped = {n for n, (_, affinity) in bits.items() if affinity & wall_type}
    feet = {f"{p}_foot_geom" for p in ("left", "right", "third", "fourth")}
    assert stopped == {"torso_geom"} | {f"aux_{k}_geom" for k in range(1, 5)} | feet
    # Only the feet touch the floor (ant, the paper's and Brax's alike).
    for env_id in ("ant", "ant_u_maze"):
        bits = _geom_bits(make(env_id))
        floor_affinity = bits.pop("floor")[1]
        assert {n for n, (contype, _) in bits.items() if contype & floor_affinity} == feet


def test_humanoid_state_holds_the_target_body(programs):
    env, out = programs.run("humanoid")
    assert env.scene.sys.link_names[-1] == "target" and env.scene.sys.num_links() == 12
    start, goal, q = out["start"], out["goal"], out["traj"]["q"]
    np.testing.assert_array_equal(start[:, 24:26], goal[:, :2])  # q of the target's joints
    np.testing.assert_allclose(q[..., 24:26], np.broadcast_to(goal[:, None, :2], q[..., 24:26].shape), atol=1e-5)
    # No reset noise: the start pose is the model's initial pose exactly.
    init_q = np.asarray(env.scene.sys.init_q)
    np.testing.assert_array_equal(start[:, :24], np.broadcast_to(init_q[:24], (N_ENVS, 24)))
    np.testing.assert_array_equal(start[:, 26:51], 0.0)  # qd


def test_switches_remove_the_humanoid_quirks():
    for env_id, dt in (("humanoid", 0.015), ("humanoid_big_maze", 0.015)):
        env = make(env_id, goal_in_state=False, **({"xml_timestep": False} if env_id == "humanoid" else {}))
        assert env.state_dim == 246 and env.dt == dt
        assert "target" not in env.scene.sys.link_names
        shapes = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        assert shapes.obs.shape == (246 + 3,)
    assert make("humanoid", xml_timestep=False).dt == 0.015
    assert make("humanoid", xml_timestep=False).state_dim == 268
    assert make("humanoid", goal_in_state=False).dt == 0.03


@pytest.mark.parametrize("env_id, params, message", [
    ("ant_u_maze", {"goal_jitter": -1}, "env.params.goal_jitter: -1 is not allowed; use a number >= 0"),
    ("humanoid", {"goal_in_state": "no"}, "env.params.goal_in_state: 'no' is not allowed; use true or false"),
    ("humanoid", {"xml_timestep": 1}, "env.params.xml_timestep: 1 is not allowed; use true or false"),
    ("humanoid_u_maze", {"xml_timestep": True}, "env.params.xml_timestep: not a parameter of humanoid_u_maze"),
    ("ant", {"goal_in_state": True}, "env.params.goal_in_state: not a parameter of ant"),
    ("ant", {"goal_jitter": 0.1}, "env.params.goal_jitter: not a parameter of ant"),
])
def test_bad_switch_values_fail_with_one_line(env_id, params, message):
    with pytest.raises((KeyError, ValueError)) as err:
        make(env_id, **params)
    text = str(err.value.args[0])
    assert text.startswith(message) and "\n" not in text


# -- walls and the block are solid -------------------------------------------------------------


def _depth_inside(points, boxes, half):
    """How deep each point lies inside the nearest wall box (<= 0: outside all of them).
    points (..., 3); boxes (B, 3) centres; half (3,) half extents."""
    rel = np.abs(points[..., None, :] - boxes) - half  # (..., B, 3)
    return (-rel.max(axis=-1)).max(axis=-1)


def _wall_boxes(env):
    cell = env.scene.robot.cell_size
    centres = np.array([(x, y, cell / 4) for x, y, _ in env.maze.wall_boxes(cell)])
    return centres, np.array([cell / 2, cell / 2, cell / 4])


@pytest.mark.parametrize(
    "env_id, velocity, face_x",
    [
        ("ant_u_maze", (-3.0, 0.0), 2.0),  # start (4, 4); the wall cell (0, 1) ends at x = 2
        ("humanoid_u_maze", (-1.5, 0.0), 1.0),  # start (2, 2); the wall cell (0, 1) ends at x = 1
    ],
)
def test_walls_stop_a_driven_robot(programs, env_id, velocity, face_x):
    env, out = programs.run(env_id, velocity=velocity)
    boxes, half = _wall_boxes(env)
    torso = out["traj"]["q"][..., :3]
    # The robot really was driven against the wall ...
    assert torso[..., 0].min() < face_x + 0.5
    # ... and its torso centre never entered a wall ...
    assert _depth_inside(torso, boxes, half).max() <= 0.0
    # ... nor did any other body by more than a limb's thickness and the contact softness.
    assert _depth_inside(out["traj"]["links"], boxes, half).max() < 0.25
    assert np.isfinite(out["traj"]["obs"]).all()


def test_the_block_moves_when_pushed_and_stays_out_of_walls(programs):
    env, out = programs.run("ant_push", velocity=(-1.0, 0.0))
    block = out["traj"]["q"][..., 15:18]
    assert (block[:, 0, 0] - block[:, -1, 0]).min() > 0.5  # shoved toward the goal area
    boxes, half = _wall_boxes(env)
    assert _depth_inside(block, boxes, half).max() <= 0.0


# -- configs and the trainer ---------------------------------------------------------------


@pytest.mark.parametrize("env_id", TRAINING_IDS)
def test_each_training_id_has_a_config_with_the_paper_defaults(env_id):
    path = REPO / "conf" / "env" / f"{env_id}.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_\n")
    conf = yaml.safe_load(text)
    assert conf["env"]["id"] == env_id
    assert conf["env"]["eval_id"] == EVAL_IDS.get(env_id)
    assert conf["env"]["episode_length"] == 1000
    assert conf["env"]["params"] == {"backend": "spring"}
    make(env_id, episode_length=conf["env"]["episode_length"], **conf["env"]["params"])
    train = conf["train"]
    assert train["num_envs"] == 512 and train["batch_size"] in (256, 512)
    assert train["unroll_length"] == 62 and train["prefill_steps"] == 1000
    assert train["buffer_size"] == 10000 and train["num_eval_envs"] == 128
    assert train["num_epochs"] >= 1  # the SGD-step rule is the training schedule's (crl/)
    paper_steps = {"ant_u4_maze": 100, "ant_big_maze": 100, "humanoid": 100, "ant_hardest_maze": 200,
                   "ant_u5_maze": 400, "humanoid_u_maze": 400, "humanoid_big_maze": 400}
    if env_id in paper_steps:
        assert train["total_env_steps"] == paper_steps[env_id] * 1_000_000
    from crl.config import Config, default_tree

    assert set(train) <= set(default_tree(Config)["train"])


def _trainer_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("crl.apps.train") is not None


TRAINING_TEST = "test_a_tiny_crl_training_on_ant_runs_end_to_end"


@pytest.fixture(scope="module", autouse=True)
def tiny_training(request, tmp_path_factory):
    """Start the end-to-end training (a subprocess) when this module starts, if selected.

    It mostly compiles, single-threaded, like the tests here: on a 2-core machine the two
    overlap, which saves about a minute of the file's wall time. The test waits for it.
    """
    selected = any(item.name == TRAINING_TEST for item in request.session.items)
    if not (selected and _trainer_available()):
        yield None
        return

    run_dir = tmp_path_factory.mktemp("tiny_training") / "run"
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import TINY, crl_env, crl_train_cmd

    # the ant in a stitching maze (the paper's Fig. 6 task): trains on pairs 1-3 cells apart
    overrides = ["env=ant_u_maze", "env.params.pair_distances=[1,2,3]", *TINY, f"hydra.run.dir={run_dir}"]
    env = crl_env()
    log = run_dir.parent / "crl-train.log"  # a file, not a pipe: a full pipe would stall it
    with open(log, "w") as out:
        process = subprocess.Popen(
            crl_train_cmd(*overrides),
            cwd=run_dir.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    yield process, run_dir, log
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.skipif(not _trainer_available(), reason="the trainer (crl.apps.train) is not installed")
def test_a_tiny_crl_training_on_ant_runs_end_to_end(tiny_training):
    import csv

    process, run_dir, log = tiny_training
    process.wait(timeout=900)
    assert process.returncode == 0, log.read_text()[-3000:]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        for name, value in row.items():
            assert math.isfinite(float(value)), (name, value)
        assert float(row["eval/episode_length"]) > 0
    from crl.apps.collect import load_config
    from crl.run import build_envs

    env, eval_env = build_envs(load_config(run_dir))  # the run scored the far pairs (4 to 6 apart)
    assert env.task.pair_weights.shape == (15,) and eval_env.task.pair_weights.shape == (6,)
