"""Rollout videos: crl-render on a point maze (numpy frames) and, where the Brax
locomotion envs exist, MuJoCo's offscreen renderer on CPU (OSMesa)."""

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import yaml

from helpers import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_run_dir(run_dir: pathlib.Path, env_id: str, episode_length: int = 20):
    """A run dir as crl-train leaves it (config.yaml, params.msgpack) with untrained
    parameters: rendering does not care whether the policy is any good."""
    import jax
    from flax import serialization

    from crl.config import from_dict
    from crl.run import build_envs
    from crl.train import Trainer

    cfg = from_dict(tiny_config(env={"id": env_id, "episode_length": episode_length}, network={"depth": 0}))
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    params = trainer.init_params(jax.random.PRNGKey(0))
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
    (run_dir / "params.msgpack").write_bytes(serialization.to_bytes(jax.device_get(params)))
    return cfg, trainer, params


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


def test_arm_frames_show_the_arm_and_the_goal(tmp_path):
    """arm_binpick_hard through its own painter (the MJCF's front camera); no Brax viewer
    is written (the MJX arm is no Brax system)."""
    render_offscreen(tmp_path, "arm_binpick_hard", steps=2)
    assert not (tmp_path / "arm_binpick_hard.html").exists()
