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
from envs.locomotion import EVAL_IDS, ENV_IDS, TRAINING_IDS, make
from envs.locomotion_scene import BALL_GOAL_DISTANCE, BALL_START_DISTANCE

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
    assert sorted(ENV_IDS) == sorted(registry.FAMILIES["envs.locomotion"])
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
    expected = {"ant": 29, "ant_ball": 42, "ant_push": 42, "humanoid": 246}
    assert spec.state_dim == expected.get(env_id, 246 if robot == "humanoid" else 29)
    assert spec.action_size == (17 if robot == "humanoid" else 8)
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


@pytest.mark.parametrize("env_id", MAZE_IDS)
def test_starts_and_goals_lie_in_free_cells(env_id):
    env = make(env_id)
    cell = env.scene.robot.cell_size
    q, goal = _episodes(env)
    walls = env.maze.walls
    goal_cells = {tuple(c) for c in env.maze.goal_cells}
    for xy, name in ((q[:, :2], "start"), (goal[:, :2], "goal")):
        cells = _cell_of(xy, cell)
        assert not walls[cells[:, 0], cells[:, 1]].any(), f"a {name} lies in a wall"
        # ...and well inside its cell, so a robot there does not touch the walls around it.
        assert np.abs(xy - cells * cell).max() <= cell / 4
    assert {tuple(c) for c in _cell_of(q[:, :2], cell)} == {tuple(env.maze.start_cell)}
    drawn = {tuple(c) for c in _cell_of(goal[:, :2], cell)}
    assert drawn == goal_cells  # only goal cells, and every one of them over 2000 resets
    if env_id.startswith("humanoid"):
        np.testing.assert_array_equal(goal[:, 2], 1.25)


@pytest.mark.parametrize("eval_id", sorted(EVAL_IDS.values()))
def test_eval_variants_draw_only_far_cells(eval_id):
    train_id = eval_id[: -len("_eval")]
    cell = make(train_id).scene.robot.cell_size
    env = make(eval_id)
    _, goal = _episodes(env, seed=2)
    drawn = {tuple(c) for c in _cell_of(goal[:, :2], cell)}
    assert drawn == {tuple(c) for c in env.maze.goal_cells}
    far = {
        "u4_maze": {(4, 1), (5, 1), (5, 2)},
        "u5_maze": {(4, 1), (5, 1), (5, 2), (5, 3)},
        "u_maze": {(3, 1), (3, 2), (3, 3)},
    }
    for name, cells in far.items():
        if eval_id.endswith(f"_{name}_eval"):
            assert drawn == cells


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
    assert train["utd_ratio"] == 0.025 and train["num_epochs"] >= 1
    paper_steps = {"ant_u4_maze": 100, "ant_big_maze": 100, "humanoid": 100, "ant_hardest_maze": 200,
                   "ant_u5_maze": 400, "humanoid_u_maze": 400, "humanoid_big_maze": 400}
    if env_id in paper_steps:
        assert train["total_env_steps"] == paper_steps[env_id] * 1_000_000
    from crl.config import default_tree

    assert set(train) <= set(default_tree()["train"])


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
    import os

    run_dir = tmp_path_factory.mktemp("tiny_training") / "run"
    overrides = [
        "env=ant", "train.num_envs=4", "train.total_env_steps=400", "train.num_epochs=2",
        "train.unroll_length=10", "train.prefill_steps=20", "train.utd_ratio=0.25",
        "train.batch_size=16", "train.buffer_size=200", "train.num_eval_envs=4",
        "env.episode_length=20", "network.width=16", "logging.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "CRL_JAX_CACHE": os.environ.get("CRL_JAX_CACHE", str(REPO / ".jax_cache"))}
    log = run_dir.parent / "crl-train.log"  # a file, not a pipe: a full pipe would stall it
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crl.apps.train", *overrides],
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
