"""Rollout videos: crl-render on a point maze (numpy frames) and, where the Brax
locomotion envs exist, MuJoCo's offscreen renderer on CPU (OSMesa); its one-line errors
(a damaged params file, another network's parameters, no OpenGL backend)."""

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import yaml

from envs.mujoco_draw import library_found
from helpers import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]
needs_osmesa = pytest.mark.skipif(not library_found("OSMesa"), reason="libOSMesa is not installed (Debian: libosmesa6)")


def make_run_dir(run_dir: pathlib.Path, env_id: str, episode_length: int = 20, **network):
    """A run dir as crl-train leaves it (config.yaml, params.msgpack) with untrained
    parameters: rendering does not care whether the policy is any good."""
    cfg, trainer, params = untrained(env_id, episode_length, **network)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
    write_params(run_dir / "params.msgpack", params)
    return cfg, trainer, params


def tiny_trainer(env_id: str, episode_length: int = 20, **network):
    """(cfg, trainer) of a tiny config (depth 0 unless `network` says otherwise)."""
    from crl.config import from_dict
    from crl.run import build_envs
    from crl.train import Trainer

    cfg = from_dict(tiny_config(env={"id": env_id, "episode_length": episode_length}, network={"depth": 0, **network}))
    env, eval_env = build_envs(cfg)
    return cfg, Trainer(cfg, env, eval_env)


def untrained(env_id: str, episode_length: int = 20, **network):
    """(cfg, trainer, params) with freshly initialised parameters."""
    import jax

    cfg, trainer = tiny_trainer(env_id, episode_length, **network)
    return cfg, trainer, trainer.init_params(jax.random.PRNGKey(0))


def zero_params(env_id: str = "point_u_maze", **network):
    """Zeros in the parameter structure of a tiny config's network (nothing initialised)."""
    import jax

    shapes = jax.eval_shape(tiny_trainer(env_id, **network)[1].init_params, jax.random.PRNGKey(0))
    return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)


def write_params(path: pathlib.Path, params) -> pathlib.Path:
    import jax
    from flax import serialization

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(serialization.to_bytes(jax.device_get(params)))
    return path


def crl_render(*args, env=None):
    env = {**os.environ, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "crl.apps.render", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def colour_pixels(frame: np.ndarray, colour, tolerance: float = 45.0) -> int:
    distance = np.linalg.norm(frame.astype(np.float32) - np.asarray(colour, np.float32), axis=-1)
    return int(np.sum(distance < tolerance))


@pytest.fixture(scope="module")
def point_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("render") / "run"
    make_run_dir(run_dir, "point_u_maze", episode_length=20)
    return run_dir


def test_point_maze_video_has_every_frame_and_shows_the_goal(point_run, tmp_path):
    import imageio.v3 as iio

    from envs.colors import GOAL_COLOR, POINT_COLOR, WALL_COLOR

    out = tmp_path / "rollout.mp4"
    result = crl_render(point_run, "--episodes", 2, "--out", out, "--width", 240, "--height", 200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 42 frames (2 episodes)" in result.stdout
    frames = iio.imread(out)
    assert frames.shape == (2 * (20 + 1), 200, 240, 3)  # per episode: the start and 20 steps
    for frame in frames:
        assert frame.std() > 20, "a blank frame"
        assert colour_pixels(frame, GOAL_COLOR) > 30, "the goal marker is not visible"
        assert colour_pixels(frame, POINT_COLOR) > 10, "the point is not visible"
        assert colour_pixels(frame, WALL_COLOR, 25) > 1000, "the walls are not drawn"
    # The two episodes have different goals: the goal marker moves between them.
    def goal_centre(frame):
        distance = np.linalg.norm(frame.astype(np.float32) - np.asarray(GOAL_COLOR, np.float32), axis=-1)
        return np.argwhere(distance < 45).mean(axis=0)

    assert np.linalg.norm(goal_centre(frames[0]) - goal_centre(frames[-1])) > 5


def test_render_run_video_is_the_training_time_entry_point(point_run):
    import imageio.v3 as iio

    from crl.apps.collect import load_run
    from crl.apps.render import render_run_video

    cfg, _, params = load_run(point_run)
    result = render_run_video(point_run, cfg, params, episodes=1, out=pathlib.Path("videos/epoch_2.mp4"),
                              width=96, height=96, steps=5)
    path = point_run / "videos" / "epoch_2.mp4"
    assert result["video"] == str(path) and result["frames"] == 6
    assert iio.imread(path).shape == (6, 96, 96, 3)


def test_crl_render_errors_are_one_line(point_run, tmp_path, capsys, monkeypatch):
    from crl.apps.render import main

    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # main() would otherwise choose one for this process

    def run(*args):
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    code, err = run(point_run, "--checkpoint", "latest")
    assert code == 2 and err.startswith("crl-render: ") and "checkpoint" in err and err.count("\n") == 1
    code, err = run(tmp_path / "nowhere")
    assert code == 2 and "config.yaml" in err
    code, err = run(point_run, "--out", tmp_path / "x.gif")
    assert code == 2 and ".mp4" in err


def render_error(*args) -> tuple[int, str]:
    """crl-render in this process: (exit code, stderr)."""
    import contextlib
    import io

    from crl.apps.render import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_a_damaged_params_file_is_one_line_naming_it(point_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # main() would otherwise choose one for this process
    data = (point_run / "params.msgpack").read_bytes()
    cut = tmp_path / "cut" / "params.msgpack"  # a params.msgpack: read by crl.run.load_params
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    code, err = render_error(point_run, "--params", cut, "--out", tmp_path / "x.mp4")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"crl-render: {cut}: not a readable params file ("), err
    garbage = tmp_path / "garbage.msgpack"  # another name: read by crl.apps.collect.load_run
    garbage.write_bytes(b"\x93not msgpack at all")
    code, err = render_error(point_run, "--params", garbage, "--out", tmp_path / "x.mp4")
    assert code == 2 and err.startswith(f"crl-render: {garbage}: not a readable params file ("), err
    assert not (tmp_path / "x.mp4").exists()


def test_params_of_a_deeper_network_name_the_shapes_and_the_blocks(tmp_path, monkeypatch):
    """A depth-4 run (one scanned block) given depth-8 parameters: flax alone restores them
    silently; crl-render names the first leaf, both shapes and the blocks the file lacks."""
    from crl.params_file import ParamsError
    from crl.run import load_params

    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    run = tmp_path / "d4"
    _, trainer, _ = make_run_dir(run, "point_u_maze", depth=4)
    deeper = write_params(tmp_path / "d8" / "params.msgpack", zero_params(depth=8))
    code, err = render_error(run, "--params", deeper)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"crl-render: {deeper}: not the network of the run's config: actor/trunk/blocks/"), err
    assert "has shape (2, 16) in the file, the config expects (1, 16)" in err, err
    # Unrolled blocks (scan_blocks=false) are other subtrees: named, missing and extra.
    unrolled = write_params(tmp_path / "u8" / "params.msgpack", zero_params(depth=8, scan_blocks=False))
    with pytest.raises(ParamsError) as info:
        load_params(unrolled.parent, trainer)
    message = str(info.value)
    assert "\n" not in message
    assert "missing from the file: actor/trunk/blocks," in message, message
    assert "extra in the file: actor/trunk/block_0, actor/trunk/block_1," in message, message


def test_params_of_a_wider_network_name_both_shapes(point_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    wider = write_params(tmp_path / "w32.msgpack", zero_params(width=32))
    code, err = render_error(point_run, "--params", wider)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"crl-render: {wider}: not the network of the run's config: actor/trunk/"), err
    # The first differing leaf: a width-32 array where the width-16 run has a width-16 one.
    import re

    found, expected = re.search(r"has shape (\(.*?\)) in the file, the config expects (\(.*?\))", err).groups()
    assert "32" in found and "32" not in expected and "16" in expected, err


def test_no_opengl_backend_is_one_line_naming_what_to_install(point_run, tmp_path, monkeypatch):
    """The GL context cannot be created (forced here: MuJoCo's renderer fails as it does
    without a GL library, and libOSMesa is reported absent): crl-render says so in one line,
    before it compiles the rollout, and writes nothing."""
    import mujoco

    from envs import mujoco_draw
    from envs.point_maze.env import PointMaze

    model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')

    def no_context(*args, **kwargs):
        raise mujoco.FatalError("an OpenGL platform library has not been loaded into this process")

    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(mujoco, "Renderer", no_context)
    monkeypatch.setattr(mujoco_draw, "library_found", lambda name: False)
    monkeypatch.setattr(PointMaze, "painter", lambda self, w, h, camera=None: mujoco_draw.MujocoPainter(model, 0.5, w, h))
    out = tmp_path / "x.mp4"
    code, err = render_error(point_run, "--out", out)
    assert code == 2, err
    assert err == (
        "crl-render: no OpenGL backend for offscreen rendering (MUJOCO_GL=osmesa: libOSMesa not found); "
        "install Debian's libosmesa6 and set MUJOCO_GL=osmesa, or use EGL on a GPU machine (MUJOCO_GL=egl)\n"
    )
    assert not out.exists()


def test_training_videos_without_opengl_log_one_line_once(tmp_path, monkeypatch, caplog):
    """The Videos callback: a missing GL backend is logged once, in one line, and no video
    is tried again (each try would fail the same way)."""
    import logging
    import types

    from crl.apps import callbacks
    from crl.config import from_dict
    from envs.mujoco_draw import no_gl_backend

    tries = []

    def no_gl(*args, **kwargs):
        tries.append(args)
        raise no_gl_backend()

    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(callbacks, "render_run_video", no_gl)
    videos = callbacks.Videos(from_dict(tiny_config(video={"enabled": True, "every_epochs": 1})), tmp_path)
    state = types.SimpleNamespace()
    videos.on_start(types.SimpleNamespace(params=lambda state: {}), 0, 2)  # the trainer gives the agent's params
    with caplog.at_level(logging.WARNING, logger=callbacks.__name__):
        for epoch in (1, 2):
            videos.on_epoch(types.SimpleNamespace(epoch=epoch, state=state))
        videos.on_end(state, types.SimpleNamespace(done=True))
    assert len(tries) == 1
    [record] = caplog.records
    assert record.getMessage().startswith("videos off for this run: no OpenGL backend for offscreen rendering (MUJOCO_GL=osmesa")
    assert "\n" not in record.getMessage()


@pytest.mark.skipif(library_found("OSMesa"), reason="libOSMesa is installed")
def test_mujoco_import_without_osmesa_becomes_the_one_line():
    """The real failure where libOSMesa is absent: with MUJOCO_GL=osmesa, importing MuJoCo
    (Brax does, while crl-render builds the env) fails inside PyOpenGL."""
    script = (
        "from envs.mujoco_draw import as_gl_error\n"
        "try:\n    import mujoco\nexcept Exception as err:\n    print(as_gl_error(err))\nelse:\n    print('imported')\n"
    )
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith(
        "no OpenGL backend for offscreen rendering (MUJOCO_GL=osmesa: libOSMesa not found); install Debian's libosmesa6"
    ), result.stdout + result.stderr[-2000:]


def render_offscreen(tmp_path, env_id: str, steps: int) -> np.ndarray:
    """crl-render of an untrained `env_id` run with OSMesa: the MP4's frames, each checked
    to be drawn (not blank) and to show the green goal marker."""
    import imageio.v3 as iio

    from envs.colors import GOAL_COLOR

    run_dir = tmp_path / env_id
    make_run_dir(run_dir, env_id, episode_length=20)
    out = tmp_path / f"{env_id}.mp4"
    result = crl_render(run_dir, "--episodes", 1, "--steps", steps, "--width", 160, "--height", 120, "--out", out,
                        env={"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"})
    assert result.returncode == 0, result.stderr[-3000:]
    frames = iio.imread(out)
    assert frames.shape == (steps + 1, 120, 160, 3)
    for frame in frames:
        assert frame.std() > 10, "a blank frame"
        assert colour_pixels(frame, GOAL_COLOR, 80) > 3, "the goal marker is not visible"
    return frames


@needs_osmesa
def test_ant_frames_render_offscreen_with_osmesa(tmp_path):
    render_offscreen(tmp_path, "ant", steps=3)
    assert (tmp_path / "ant.html").read_text().count("<html") >= 1  # Brax's viewer of the episode


def test_the_video_rollout_is_the_evaluation_rollout(point_run):
    """crl-render and evaluation run one rollout function: same episodes, same time at goal."""
    import jax

    from crl.apps.collect import load_run
    from crl.apps.render import rollout
    from crl.evaluate import evaluate

    cfg, trainer, params = load_run(point_run)
    env = trainer.eval_env
    roll = rollout(trainer, params["actor"], env, episodes=4, steps=20, seed=3)
    metrics = evaluate(env, trainer.policy_deterministic, params["actor"], jax.random.PRNGKey(3), 4, 20)
    per_episode = [roll.success[e, 1: roll.frames[e]].sum() for e in range(4)]
    assert np.mean(per_episode) == pytest.approx(float(metrics["time_at_goal"]))
    assert roll.pose["q"].shape == (4, 21, 2) and np.all(roll.frames == 21)


@needs_osmesa
def test_arm_frames_show_the_arm_and_the_goal(tmp_path):
    """arm_binpick_hard through its own painter (the MJCF's front camera); no Brax viewer
    is written (the MJX arm is no Brax system)."""
    render_offscreen(tmp_path, "arm_binpick_hard", steps=2)
    assert not (tmp_path / "arm_binpick_hard.html").exists()
