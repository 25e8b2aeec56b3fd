"""The paper's arm tasks: facts (sizes, regions, model, contact pairs), physics, training.

Fast tests use MuJoCo C or eager JAX (no MJX compile). The MJX physics checks share two
compiled programs: a batch of three scripted push-scene episodes (rest, grasp-and-lift,
sweep) and a batch of two bin-scene episodes (a cube thrown at a wall of each bin), each
run once per module. The end-to-end `crl-train` run starts in the background when the
module starts and is awaited by the last test.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from envs import registry
from envs.manipulation import ENV_IDS, make
from envs.manipulation.mjcf import CONTROL_DT, CUBE_START_Z, HAND_QUAT, bin_walls, quat_mul, quat_rotate
from envs.manipulation.physics import ARM_START, action_to_ctrl, contact_geom_pairs
from envs.manipulation.scripted import hold_action, pose_action
from envs.manipulation.tasks import TASKS

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAINING_TEST = "test_tiny_crl_training_on_arm_push_easy"
RESETS = 512
CHUNK = 10  # env steps per call of a compiled physics program

CUBE_TASKS = [i for i in ENV_IDS if i != "arm_reach"]
# The paper's contact pairs (its panda_*.xml), as MuJoCo compiles them through Brax.
_BASE_PAIRS = {("cube_geom", "table_geom"), ("cube_geom", "hand_geom"), ("cube_geom", "left_finger_geom"),
               ("cube_geom", "right_finger_geom"), ("hand_geom", "table_geom"), ("left_finger_geom", "table_geom"),
               ("right_finger_geom", "table_geom"), ("left_finger_geom", "right_finger_geom")}
_WALLS = [f"bin{b}{k}" for b in "AB" for k in range(1, 5)]
_BIN_PAIRS = _BASE_PAIRS | {tuple(sorted((g, w))) for w in _WALLS
                            for g in ("cube_geom", "hand_geom", "left_finger_geom", "right_finger_geom")}
PAPER_PAIRS = {"arm_reach": {("hand_geom", "table_geom")}, "arm_push_easy": _BASE_PAIRS, "arm_push_hard": _BASE_PAIRS,
               "arm_grasp": _BASE_PAIRS, "arm_binpick_easy": _BIN_PAIRS, "arm_binpick_hard": _BIN_PAIRS}
# (state size, action size, goal indices)
PAPER_SIZES = {"arm_reach": (13, 4, (7, 8, 9)), "arm_grasp": (23, 5, tuple(range(16, 23)))}
# (cube centre, cube half-width, goal centre, goal half-widths) of the paper's arm_*.py
PAPER_REGIONS = {
    "arm_push_easy": ((-0.1, 0.6), 0.1, (0.1, 0.6, 0.03), (0.1, 0.1, 0)),
    "arm_push_hard": ((-0.25, 0.65), 0.25, (0.25, 0.65, 0.03), (0.25, 0.25, 0)),
    "arm_binpick_easy": ((-0.15, 0.6), 0.09, (0.17, 0.6, 0.03), (0.09, 0.09, 0)),
    "arm_binpick_hard": ((-0.3, 0.6), 0.15, (0.3, 0.6, 0.03), (0.15, 0.15, 0)),
    "arm_grasp": ((0.0, 0.6), 0.3, None, None),
    "arm_reach": (None, None, (0.0, 0.5, 0.3), (0.2, 0.2, 0.2)),
}
# (bin centre x, wall centre-line half-width) of binA / binB (mirrored at +x)
PAPER_BINS = {"arm_binpick_easy": (0.17, 0.14), "arm_binpick_hard": (0.3, 0.19)}
PAPER_START_LINK7 = (-0.000138, 0.678043, 0.370831)  # the paper's model at its start pose


def _trainer_available() -> bool:
    return importlib.util.find_spec("crl.apps.train") is not None


@pytest.fixture(scope="module", autouse=True)
def tiny_training(request, tmp_path_factory):
    """Start the end-to-end training (a subprocess, minutes on a loaded CPU, mostly
    compiling) as soon as this module starts, so it overlaps the other tests."""
    if not (_trainer_available() and any(item.name == TRAINING_TEST for item in request.session.items)):
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import TINY, crl_env, crl_train_cmd

    run_dir = tmp_path_factory.mktemp("arm_training") / "run"
    log = run_dir.parent / "crl-train.log"  # a file: a pipe nobody reads could fill and stall it
    with open(log, "w") as out:
        process = subprocess.Popen(crl_train_cmd("env=arm_push_easy", *TINY, f"hydra.run.dir={run_dir}"),
                                   cwd=run_dir.parent, env=crl_env(), stdout=out, stderr=subprocess.STDOUT)
    yield process, run_dir, log
    if process.poll() is None:
        process.kill()
        process.wait()


@functools.lru_cache(maxsize=None)
def _env(env_id):
    return make(env_id)


@functools.lru_cache(maxsize=None)
def _resets(env_id):
    return jax.vmap(_env(env_id).reset)(jax.random.split(jax.random.PRNGKey(0), RESETS))


# -- interface and the paper's facts (no MJX compile) -----------------------------------------


def test_ids_match_registry():
    assert ENV_IDS == sorted(registry.ids_of("envs.manipulation"))
    assert registry.family_of("arm_push_easy") == "envs.manipulation"


@pytest.mark.parametrize("kwargs, key", [
    ({"success_radius": -1.0}, "env.params.success_radius"),
    ({"episode_length": 0}, "env.episode_length"),
    ({"episode_length": 2.5}, "env.episode_length"),
    ({"frame_skip": 5}, "env.params.frame_skip"),
])
def test_bad_parameters_fail_with_one_line_naming_the_key(kwargs, key):
    with pytest.raises((KeyError, ValueError)) as err:
        make("arm_push_easy", **kwargs)
    message = str(err.value).strip("'\"")
    assert message.startswith(key) and "allowed" in message and "\n" not in message
    with pytest.raises(KeyError, match="env.id: unknown manipulation env 'arm_fly'; allowed: arm_binpick_easy"):
        make("arm_fly")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sizes_control_step_and_solver_are_the_papers(env_id):
    env = _env(env_id)
    state_dim, action_size, goal_indices = PAPER_SIZES.get(env_id, (17, 5, (0, 1, 2)))
    assert (env.state_dim, env.action_size, env.goal_indices) == (state_dim, action_size, goal_indices)
    assert env.obs_size == state_dim + len(goal_indices) and env.episode_length == 1000
    assert env.dt == CONTROL_DT == 0.05
    opt = env.model.mj.opt
    assert (opt.timestep, opt.iterations, opt.ls_iterations) == (0.002, 6, 12)
    assert opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST and opt.solver == mujoco.mjtSolver.mjSOL_NEWTON
    assert opt.impratio == (10.0 if "binpick" in env_id else 1.0)
    # the mass matrix on MJX's JAX route: no LAPACK call beside the solver's (the CPU deadlock)
    assert mujoco.mj_isSparse(env.model.mj)
    assert env.model.ctrl_size == (7 if env_id == "arm_reach" else 9)
    state = _resets(env_id)
    assert state.obs.shape == (RESETS, env.obs_size) and bool(jnp.all(jnp.isfinite(state.obs)))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_contact_pairs_are_exactly_the_papers(env_id):
    mj = _env(env_id).model.mj
    assert not mj.geom_contype.any() and not mj.geom_conaffinity.any()  # no collision besides pairs
    pairs = {tuple(sorted((mj.geom(a).name, mj.geom(b).name))) for a, b in zip(mj.pair_geom1, mj.pair_geom2)}
    assert pairs == PAPER_PAIRS[env_id] and mj.npair == len(pairs)
    sizes = {mj.geom(i).name: mj.geom_size[i].tolist() for i in range(mj.ngeom) if mj.geom(i).name}
    assert sizes["hand_geom"][:2] == pytest.approx([0.04, 0.06])
    if env_id != "arm_reach":
        assert sizes["cube_geom"] == pytest.approx([0.03] * 3)
        assert sizes["left_finger_geom"] == sizes["right_finger_geom"] == pytest.approx([0.015, 0.005, 0.04])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_resets_draw_the_papers_start_and_goal_regions(env_id):
    env, state = _env(env_id), _resets(env_id)
    cube_c, cube_h, goal_c, goal_h = PAPER_REGIONS[env_id]
    q = np.asarray(state.physics.qpos)
    m = env.model
    np.testing.assert_allclose(q[:, m.arm_qpos], np.broadcast_to(ARM_START, (RESETS, 7)), atol=1e-6)
    link7 = slice(7, 10) if env_id == "arm_reach" else slice(10, 13)
    np.testing.assert_allclose(state.obs[:, link7], np.broadcast_to(PAPER_START_LINK7, (RESETS, 3)), atol=2e-6)
    if cube_c is not None:
        np.testing.assert_allclose(q[:, m.finger_qpos], 0.04)
        cube = q[:, m.cube_qpos : m.cube_qpos + 7]
        np.testing.assert_allclose(cube[:, 2:], np.broadcast_to([CUBE_START_Z, 1, 0, 0, 0], (RESETS, 5)), atol=1e-7)
        offset = (cube[:, :2] - cube_c) / cube_h
        assert np.abs(offset).max() <= 1 + 1e-5 and (offset.min(0) < -0.95).all() and (offset.max(0) > 0.95).all()
        np.testing.assert_allclose(state.obs[:, :3], cube[:, :3], atol=1e-7)
    goal = np.asarray(state.goal)
    np.testing.assert_allclose(state.obs[:, env.state_dim:], goal)
    if goal_c is not None:
        offset = goal - goal_c
        half = np.asarray(goal_h, float)
        assert (np.abs(offset) <= half + 1e-6).all()
        spread = half > 0
        assert (offset.min(0)[spread] < -0.95 * half[spread]).all() and (offset.max(0)[spread] > 0.95 * half[spread]).all()
    else:  # arm_grasp: fingertip targets 3.75 cm either side of the cube, opening 7.5 cm
        cube = q[:, m.cube_qpos : m.cube_qpos + 3]
        np.testing.assert_allclose(goal[:, :3], cube + [0.0375, 0, 0], atol=1e-6)
        np.testing.assert_allclose(goal[:, 3:6], cube - [0.0375, 0, 0], atol=1e-6)
        np.testing.assert_allclose(goal[:, 6], 0.075)
    assert float(state.done.max()) == 0.0


@pytest.mark.parametrize("env_id", sorted(PAPER_BINS))
def test_bins_are_the_papers(env_id):
    mj = _env(env_id).model.mj
    centre, half = PAPER_BINS[env_id]
    data = mujoco.MjData(mj)
    mujoco.mj_kinematics(mj, data)
    for name, x in (("binA", -centre), ("binB", centre)):
        walls = [(data.geom_xpos[mj.geom(f"{name}{k}").id], mj.geom_size[mj.geom(f"{name}{k}").id]) for k in range(1, 5)]
        for (pos, size), (want_pos, want_size) in zip(walls, bin_walls(TASKS[env_id].scene.bins[0])):
            np.testing.assert_allclose(pos, [x + want_pos[0], 0.6 + want_pos[1], want_pos[2]], atol=1e-9)
            np.testing.assert_allclose(size, want_size)
        np.testing.assert_allclose(walls[0][1], [half + 0.005, 0.005, 0.033])  # 2 * that long, 6.6 cm high, 1 cm thick
        np.testing.assert_allclose(walls[2][1], [0.005, half - 0.005, 0.033])
        np.testing.assert_allclose(walls[1][0][1] - walls[0][0][1], 2 * half)


def test_action_map_is_the_papers():
    lo = [0.3491, 0, 0, -3.0718, 0, 2.3562, 1.4487]
    hi = [2.7925, 1.48353, 0, -0.0698, 0, 3.7525, 1.4487]
    np.testing.assert_allclose(action_to_ctrl(-jnp.ones(5), 9), lo + [255, 255], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(action_to_ctrl(jnp.array([1, 1, 1, 1, 0.01]), 9), hi + [0, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(action_to_ctrl(jnp.zeros(5), 9)[7:], [255, 255])  # 0 is open: closed only when > 0
    np.testing.assert_allclose(action_to_ctrl(jnp.ones(4), 7), hi, rtol=1e-6, atol=1e-6)


# The paper's model (its panda_*.xml through Brax's mjcf.load, iterations 6 / ls 12) in
# MuJoCo C: 500 steps of 2 ms from the start pose, cube at (c, 0.55, 0.07), fixed ctrl.
PAPER_TRAJECTORY = {
    "arm_push_easy": (0.0, {"link7": [-0.099451, 0.766119, 0.452205], "cube": [0.0, 0.55, 0.029892],
                            "left_finger": [-0.090761, 0.699784, 0.30094]}),
    "arm_binpick_hard": (0.25, {"link7": [-0.099451, 0.766119, 0.452205], "cube": [0.25, 0.55, 0.029989]}),
    "arm_grasp": (0.0, {"link7": [-0.099452, 0.76612, 0.452202], "cube": [0.0, 0.55, 0.029892],
                        "left_finger": [-0.090763, 0.699783, 0.300937]}),
    "arm_reach": (None, {"link7": [-0.320571, 0.700669, 0.506257]}),
}


def test_hand_poses_compose_with_mujocos_quaternions():
    """quat_mul / quat_rotate are MuJoCo's mju_mulQuat / mju_rotVecQuat on unit quaternions:
    quat_mul(a, b) rotates as b then a, and the hand's composed pose is the one the
    hand-written helpers gave (to 1e-15)."""
    rng = np.random.default_rng(0)
    for a, b, v in zip(rng.normal(size=(20, 4)), rng.normal(size=(20, 4)), rng.normal(size=(20, 3))):
        np.testing.assert_allclose(quat_rotate(quat_mul(a, b), v), quat_rotate(a, quat_rotate(b, v)), atol=1e-12)
    np.testing.assert_allclose(quat_rotate((0, 0, 0, 2), (1, 0, 0)), (-1, 0, 0), atol=1e-15)  # half a turn about z
    np.testing.assert_allclose(quat_mul(HAND_QUAT, (1, 1, 0, 0)), [0.6532814871628068, 0.6532814871628068,
                                                                  -0.27059803866686, -0.27059803866686], atol=1e-15)


@pytest.mark.parametrize("env_id", sorted(PAPER_TRAJECTORY))
def test_model_reproduces_the_papers_trajectory(env_id):
    """Body tree, inertials, joint defaults, actuators, contacts and solver together: our
    generated model follows the paper's own to 1e-6 m over one simulated second."""
    m = _env(env_id).model
    cube_x, want = PAPER_TRAJECTORY[env_id]
    data = mujoco.MjData(m.mj)
    data.qpos[:] = m.home_qpos
    if cube_x is not None:
        data.qpos[m.cube_qpos : m.cube_qpos + 7] = [cube_x, 0.55, 0.07, 1, 0, 0, 0]
        data.ctrl[:] = [1.7, 0.9, 0, -1.4, 0, 2.6, 1.4487, 0, 0]
    else:
        data.ctrl[:] = [2.0, 0.9, 0, -1.2, 0, 2.6, 1.4487]
    for _ in range(500):
        mujoco.mj_step(m.mj, data)
    for body, pos in want.items():
        np.testing.assert_allclose(data.xpos[m.mj.body(body).id], pos, atol=2e-6, err_msg=body)


def test_success_metrics_follow_the_papers_rules():
    env = _env("arm_push_easy")
    s = jnp.zeros(17)
    for dist, flags in ((0.02, (1, 1, 1)), (0.05, (1, 1, 0)), (0.2, (0, 1, 0)), (0.4, (0, 0, 0))):
        m = env._metrics(s, jnp.array([dist, 0.0, 0.0]))
        assert tuple(int(m[k]) for k in ("success", "success_easy", "success_hard")) == flags
    grasp = _env("arm_grasp")
    s = jnp.zeros(23).at[:3].set(jnp.array([0.0, 0.6, 0.03]))
    tips = lambda d, gap: s.at[16:19].set(jnp.array([gap / 2, 0.6 + d, 0.03])).at[19:22].set(  # noqa: E731
        jnp.array([-gap / 2, 0.6 + d, 0.03])).at[22].set(gap)
    for d, gap, flags in ((0.01, 0.076, (1, 1, 1)), (0.04, 0.06, (1, 1, 0)), (0.1, 0.075, (0, 1, 0)), (0.0, 0.2, (0, 0, 0))):
        m = grasp._metrics(tips(d, gap), grasp._grasp_goal(s[:3]))
        assert tuple(int(m[k]) for k in ("success", "success_easy", "success_hard")) == flags, (d, gap)


def test_reset_and_step_states_have_identical_types():
    """A step's output can be fed back without a recompile (and auto-reset can select)."""
    env = _env("arm_push_easy")
    state = env.reset(jax.random.PRNGKey(0))
    after = jax.eval_shape(env.step, state, jnp.zeros(5))
    describe = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, "weak_type", False)), t)  # noqa: E731
    assert describe(after) == describe(jax.eval_shape(lambda: state))


def _python(code, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CRL_ARM_KEEP_XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env={**base, **env}, capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


_SHOW = "import os; print('XLA_FLAGS=' + os.environ.get('XLA_FLAGS', ''))"


@pytest.mark.parametrize("before, after", [
    ("", "--xla_cpu_use_fusion_emitters=false"),
    ("--xla_dump_to=/tmp/x", "--xla_dump_to=/tmp/x --xla_cpu_use_fusion_emitters=false"),
    ("--xla_cpu_use_fusion_emitters=true", "--xla_cpu_use_fusion_emitters=true"),  # the user's choice stands
])
def test_importing_the_arm_sets_the_cpu_flag_before_jax_starts(before, after):
    out = _python("import envs.manipulation; " + _SHOW, **({"XLA_FLAGS": before} if before else {}))
    assert f"XLA_FLAGS={after}\n" in out.stdout


def test_the_flag_is_not_set_late_but_warned_about():
    out = _python("import jax; jax.devices(); import envs.manipulation; " + _SHOW)
    assert "XLA_FLAGS=\n" in out.stdout and "started its backend before this import" in out.stderr
    out = _python("import envs.manipulation; " + _SHOW, CRL_ARM_KEEP_XLA_FLAGS="1")
    assert "XLA_FLAGS=\n" in out.stdout


# -- physics (MJX: two compiled programs) --------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _runner(env_id):
    """One jitted CHUNK-step program per scene, returning observations and contacts."""
    env = _env(env_id)

    def run(state, actions):
        def body(s, a):
            s, data = jax.vmap(env.step_data)(s, a)
            geom, active = jax.vmap(lambda d: contact_geom_pairs(env.model, d))(data)
            return s, (s.obs, geom, active)

        return jax.lax.scan(body, state, actions)

    return jax.jit(run)


def _drive(env_id, state, actions):
    """Step a batch through actions (T, batch, action_size), CHUNK steps per call."""
    run = _runner(env_id)
    obs, touching = [], set()
    mj = _env(env_id).model.mj
    for t in range(0, len(actions), CHUNK):
        state, (o, geom, active) = run(state, jnp.asarray(actions[t : t + CHUNK]))
        obs.append(np.asarray(o))
        g, a = np.asarray(geom), np.asarray(active)
        touching |= {tuple(sorted((mj.geom(i).name, mj.geom(j).name))) for i, j in g[a]}
    return state, np.concatenate(obs), touching


def _place(env, states, cubes, velocities=None):
    out = [env.set_cube(jax.tree.map(lambda x: x[i], states), c) for i, c in enumerate(cubes)]
    if velocities is not None:
        m = env.model
        out = [s.replace(physics=s.physics.replace(qvel=s.physics.qvel.at[m.cube_qvel : m.cube_qvel + 3].set(v)))
               for s, v in zip(out, velocities)]
    return jax.tree.map(lambda *x: jnp.stack(x), *out)


def _plan(model, waypoints, total):
    """[(xyz or None for hold, gripper, steps), ...] -> (total, action) padded with the last."""
    rows = []
    for xyz, gripper, steps in waypoints:
        a = hold_action(model, gripper) if xyz is None else pose_action(model, xyz, gripper)
        rows += [a] * steps
    return np.stack(rows + [rows[-1]] * (total - len(rows)))


PUSH_STEPS = 200
CUBE_AT = (0.0, 0.6, 0.03)


@pytest.fixture(scope="module")
def push_episodes():
    """Three arm_push_easy episodes in one batch: 0 the arm holds still, 1 grasp and lift,
    2 a sweep through the cube; the cube starts on the table at CUBE_AT."""
    env = _env("arm_push_easy")
    m = env.model
    x, y, _ = CUBE_AT
    plans = [
        _plan(m, [(None, -1.0, PUSH_STEPS)], PUSH_STEPS),
        _plan(m, [((x, y, 0.15), -1.0, 20), ((x, y, 0.035), -1.0, 20), ((x, y, 0.035), 1.0, 15),
                  ((x, y, 0.25), 1.0, 25)], PUSH_STEPS),
        _plan(m, [((x - 0.15, y, 0.1), 1.0, 20), ((x - 0.15, y, 0.03), 1.0, 10), ((x + 0.15, y, 0.03), 1.0, 20)],
              PUSH_STEPS),
    ]
    start = _place(env, jax.tree.map(lambda v: v[:3], _resets("arm_push_easy")), [CUBE_AT] * 3)
    state, obs, touching = _drive("arm_push_easy", start, np.stack(plans, 1))
    return env, start, obs, touching


def test_cube_rests_on_the_table_while_the_arm_holds_still(push_episodes):
    env, start, obs, _ = push_episodes
    cube = obs[:, 0, :3]
    assert np.abs(cube[-1] - CUBE_AT).max() < 1e-3  # 200 steps = 10 s later
    assert np.abs(cube[-50:] - cube[-1]).max() < 1e-4  # and at rest
    joints = obs[-50:, 0, 3:10]
    assert np.abs(joints - joints[-1]).max() < 1e-3  # the arm has settled and stays
    assert np.isfinite(obs).all()


def test_gripper_closes_on_the_cube_and_lifts_it(push_episodes):
    env, _, obs, _ = push_episodes
    lifted = obs[79, 1]
    cube, gap = lifted[:3], lifted[16]
    assert cube[2] > 0.15  # lifted 12+ cm
    assert 0.05 < gap < 0.065  # the fingers rest on the cube's faces (6 cm) instead of closing
    assert obs[54, 1, 2] < 0.035  # it was lying on the table until the lift began
    link7 = lifted[10:13]
    assert np.linalg.norm(cube[:2] - link7[:2]) < 0.1  # held under the hand


def test_a_sweep_of_the_hand_moves_the_cube(push_episodes):
    _, _, obs, _ = push_episodes
    cube = obs[-1, 2, :3]
    assert cube[0] - CUBE_AT[0] > 0.05
    assert abs(cube[2] - 0.03) < 0.01  # pushed along the table, not thrown


def test_only_the_papers_pairs_collide(push_episodes, bin_episodes):
    for touching, env_id in ((push_episodes[3], "arm_push_easy"), (bin_episodes[2], "arm_binpick_hard")):
        assert touching <= PAPER_PAIRS[env_id]
    assert {("cube_geom", "table_geom"), ("cube_geom", "left_finger_geom")} <= push_episodes[3]


@pytest.fixture(scope="module")
def bin_episodes():
    """arm_binpick_hard: a cube dropped in each bin, thrown at 1.5 m/s towards a wall
    (table friction would stop it within 11 cm; in the air it reaches the wall)."""
    env = _env("arm_binpick_hard")
    centre, half = PAPER_BINS["arm_binpick_hard"]
    cubes = [(-centre - 0.08, 0.6, 0.1), (centre, 0.6 + 0.08, 0.1)]  # 7.5 cm from a wall, moving at it
    velocities = [(-1.5, 0.0, 0.0), (0.0, 1.5, 0.0)]
    start = _place(env, jax.tree.map(lambda v: v[:2], _resets("arm_binpick_hard")), cubes, velocities)
    actions = np.broadcast_to(hold_action(env.model), (40, 2, 5))
    state, obs, touching = _drive("arm_binpick_hard", start, actions)
    return obs, half, touching, centre


def test_a_cube_dropped_in_either_bin_stays_inside(bin_episodes):
    obs, half, _, centre = bin_episodes
    inner = half - 0.005 - 0.03 + 2e-3  # wall's inner face minus the cube's half-width
    for k, x0 in enumerate((-centre, centre)):
        cube = obs[:, k, :3]
        offset = np.abs(cube[:, :2] - (x0, 0.6))
        assert offset.max() < half  # never past a wall's centre line (the soft impact dents ~1 cm)
        assert offset[-1].max() < inner and abs(cube[-1, 2] - 0.03) < 3e-3  # at rest inside
        assert offset[:, k].max() > inner - 0.01  # it got to the wall: the wall stopped it


# -- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not _trainer_available(), reason="the trainer (crl.apps.train) is not installed")
def test_tiny_crl_training_on_arm_push_easy(tiny_training):
    """`crl-train env=arm_push_easy` with the tiny config runs to the end (started by the
    module fixture) and logs finite metrics for both epochs."""
    process, run_dir, log = tiny_training
    process.wait(timeout=1500)
    assert process.returncode == 0, log.read_text()[-3000:]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        for name, value in row.items():
            assert math.isfinite(float(value)), (name, value)
