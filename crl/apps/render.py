"""Rollout videos of a trained policy: `crl-render <run dir>` and `render_run_video`.

    crl-render runs/point_u_maze/2025-01-01_12-00-00_d4_s0 --episodes 3 --out rollouts.mp4

The deterministic policy (tanh of the actor's mean) runs `--episodes` episodes on the
run's evaluation env (its `_eval` variant where the config names one). Each episode
gives `steps + 1` frames (the start and one per step; a robot that falls stops its
episode early), episodes one after another, written as an H.264 MP4 (imageio-ffmpeg).

* Point mazes are drawn with numpy: walls, floor, the goal (a green disc inside a pale
  ring of the success radius), the point (red) and its trail.
* Brax / MJX tasks use MuJoCo's offscreen renderer on the env's MuJoCo model, with the
  goal added to the scene as a translucent green sphere of the success radius. The GL
  backend is MuJoCo's MUJOCO_GL: when unset, `egl` on a machine with an NVIDIA GPU and
  `osmesa` (Debian's libosmesa6) otherwise; without a working backend crl-render says
  which library is missing in one line. Brax tasks also get Brax's HTML viewer of the
  first episode next to the MP4 (`<out>.html`).

Parameters come from the run's params.msgpack, or `--params FILE`, or a training
checkpoint: `--checkpoint latest` or `--checkpoint N` (<run dir>/checkpoints/epoch_N;
runs keep the newest `checkpoint.keep` of them). A damaged params file, or one of another
network (depth, width), is refused in one line naming the file (and the shapes).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from crl import checkpoint as ckpt
from crl.apps import enable_compilation_cache
from crl.apps.collect import CollectError, load_config, load_run
from crl.config import ConfigError
from crl.evaluate import rollout as evaluation_rollout
from crl.run import build_envs
from crl.train import Trainer
from envs.base import Drawable
from envs.mujoco_draw import GLBackendError, as_gl_error, configure_gl


class RenderError(RuntimeError):
    """A run that cannot be rendered (no params, an env without a renderer, ...)."""


# -- rolling out ----------------------------------------------------------------------------


@dataclasses.dataclass
class Rollout:
    """Host arrays of `episodes` deterministic episodes (time axis second).

    pose:    {"q": (E, T+1, ...), "qd": ...}: point position, or generalised coordinates
    goal:    (E, goal_dim)
    success: (E, T+1) inside the success radius
    frames:  (E,) frames to show per episode (T+1 unless the episode terminated)
    """

    pose: dict
    goal: np.ndarray
    success: np.ndarray
    frames: np.ndarray


def rollout(trainer, actor_params, env, episodes: int, steps: int, seed: int = 0) -> Rollout:
    """The deterministic policy for `episodes` episodes of `steps` steps on `env`: the
    evaluation rollout (crl.evaluate.rollout), recording the env's poses for drawing."""

    @jax.jit
    def run(params, key):
        traj = evaluation_rollout(env, trainer.policy_deterministic, params, key, episodes, steps, record=env.pose)
        poses = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), traj["start"], traj["record"])
        # Frame 0 is the start; frame t > 0 is shown while the episode ran into step t.
        success = jnp.concatenate([jnp.zeros((1, episodes)), traj["at_goal"]])
        frames = 1 + jnp.sum(traj["running"], axis=0).astype(jnp.int32)
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731 - time-major -> episode-major
        return jax.tree.map(swap, poses), traj["goal"], swap(success), frames

    poses, goal, success, frames = jax.device_get(run(actor_params, jax.random.PRNGKey(seed)))
    return Rollout(
        pose={k: np.asarray(v) for k, v in poses.items()},
        goal=np.asarray(goal),
        success=np.asarray(success),
        frames=np.asarray(frames),
    )


# -- Brax's HTML viewer -------------------------------------------------------------------------


def write_brax_html(env, pose: dict, frames: int, out: pathlib.Path) -> pathlib.Path | None:
    """Brax's HTML viewer of one episode (Brax-based envs only); None when not possible."""
    system = env.brax_system()
    if system is None or "qd" not in pose:
        return None
    # Brax's viewer only for Brax tasks: not needed to draw point mazes or the arm.
    from brax import kinematics
    from brax.io import html

    q, qd = pose["q"][:frames], pose["qd"][:frames]
    xs, _ = jax.jit(jax.vmap(lambda a, b: kinematics.forward(system, a, b)))(q, qd)
    xs = jax.device_get(xs)
    # The viewer reads only `state.x` (link positions and rotations) of each state.
    states = [types.SimpleNamespace(x=jax.tree.map(lambda x, t=t: x[t], xs)) for t in range(frames)]
    out.write_text(html.render(system, states, height=480, colab=False))
    return out


# -- videos -------------------------------------------------------------------------------------


def _default_fps(env) -> int:
    dt = env.dt
    if isinstance(dt, (int, float)) and dt > 0:
        return int(min(60, max(10, round(1.0 / dt))))
    return 20


def write_video(frames, out: pathlib.Path, fps: int) -> int:
    """Write uint8 (H, W, 3) frames as an H.264 MP4; returns the number of frames."""
    import imageio.v2 as imageio  # lazy: only a run that writes a video needs it (and ffmpeg)

    out.parent.mkdir(parents=True, exist_ok=True)
    # imageio-ffmpeg starts ffmpeg with fork+exec, which is safe; silence Python's generic
    # warning about forking a multithreaded (JAX) process.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        return _write_frames(imageio, frames, out, fps)


def _write_frames(imageio, frames, out: pathlib.Path, fps: int) -> int:
    count = 0
    with imageio.get_writer(
        str(out), fps=fps, codec="libx264", quality=8, pixelformat="yuv420p", macro_block_size=2,
        ffmpeg_log_level="error",
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
            count += 1
    return count


def render_rollouts(
    trainer,
    params: dict,
    env,
    episodes: int,
    out: pathlib.Path,
    *,
    steps: int | None = None,
    width: int = 480,
    height: int = 480,
    fps: int | None = None,
    seed: int = 0,
    camera: str | None = None,
    html: bool = True,
) -> dict:
    """Roll out the deterministic policy and write the MP4 (and Brax HTML) to `out`."""
    if episodes < 1:
        raise RenderError(f"--episodes: {episodes} is not allowed; use at least 1")
    if width < 16 or height < 16:
        raise RenderError(f"--width/--height: {width}x{height} is too small; use at least 16x16")
    if not isinstance(env, Drawable):
        raise RenderError(f"{env.env_id}: this env does not draw itself (envs.base.Drawable)")
    out = pathlib.Path(out)
    steps = int(steps or trainer.cfg.env.episode_length)
    painter = env.painter(width, height, camera)  # first: no GL backend fails before the rollout compiles
    try:
        roll = rollout(trainer, params["actor"], env, episodes, steps, seed)

        def all_frames():
            for e in range(episodes):
                n = int(roll.frames[e])
                yield from painter.episode({k: v[e, :n] for k, v in roll.pose.items()}, roll.goal[e])

        count = write_video(all_frames(), out, fps or _default_fps(env))
    finally:
        painter.close()
    result = {
        "video": str(out),
        "frames": count,
        "episodes": episodes,
        "time_at_goal": [float(roll.success[e, 1 : roll.frames[e]].sum()) for e in range(episodes)],
    }
    if html:
        try:
            page = write_brax_html(env, {k: v[0] for k, v in roll.pose.items()}, int(roll.frames[0]), out.with_suffix(".html"))
        except Exception as err:  # the viewer is a bonus: never lose the video over it
            warnings.warn(f"no Brax HTML viewer for {env.env_id}: {err.__class__.__name__}: {err}", stacklevel=2)
            page = None
        if page is not None:
            result["html"] = str(page)
    return result


def render_run_video(
    run_dir: pathlib.Path,
    cfg,
    params: dict,
    episodes: int,
    out: pathlib.Path,
    trainer=None,
    **options,
) -> dict:
    """Training-time entry point: a video of `params` (as `crl.run.load_params` returns:
    {"actor", "critic", "log_alpha"}; only "actor" is used) on the run's evaluation env,
    written to `out` (a relative path is taken inside `run_dir`). Pass the run's `trainer`
    to reuse its envs; options as for `render_rollouts` (width, height, steps, fps, seed,
    camera, html). Returns {"video", "frames", "episodes", "time_at_goal"[, "html"]}."""
    out = pathlib.Path(out)
    if not out.is_absolute():
        out = pathlib.Path(run_dir) / out
    if trainer is None:
        env, eval_env = build_envs(cfg)
        trainer = Trainer(cfg, env, eval_env)
    return render_rollouts(trainer, params, trainer.eval_env, episodes, out, **options)


# -- the console script ----------------------------------------------------------------------


def load_checkpoint_params(run_dir: pathlib.Path, trainer, checkpoint: str) -> dict:
    """Parameters of a training checkpoint in <run_dir>/checkpoints: `latest` (the newest
    intact one) or an epoch number (checkpoints/epoch_<N>). Same structure as
    `crl.run.load_params`: the agent's layout, {"actor", ...}."""
    directory = pathlib.Path(run_dir) / "checkpoints"
    checkpointer = ckpt.Checkpointer(directory)
    template = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    if checkpoint == "latest":
        restored = checkpointer.restore_latest(template)
        if restored is None:
            raise RenderError(f"--checkpoint latest: no checkpoint in {directory}")
        state = restored.state
    else:
        try:
            epoch = int(checkpoint)
        except ValueError:
            raise RenderError(f"--checkpoint {checkpoint!r}: use an epoch number or 'latest'") from None
        path = directory / f"epoch_{epoch:06d}"
        available = ", ".join(p.name for p in checkpointer.complete_checkpoints()) or "none"
        if not path.is_dir():
            raise RenderError(f"--checkpoint {epoch}: no {path}; available: {available}")
        try:
            manifest = checkpointer.verify(path)
        except ckpt.CheckpointError as err:
            raise RenderError(f"--checkpoint {epoch}: {err}") from None
        import orbax.checkpoint as ocp  # lazy, as in crl.checkpoint: orbax is slow to import

        target = template if manifest.get("include_buffer", True) else template.replace(buffer=None)
        state = ocp.StandardCheckpointer().restore(path / "state", target)
    return trainer.params(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="crl-render",
        description="Render rollouts of a trained policy (deterministic actor) to an MP4.",
    )
    parser.add_argument("run_dir", type=pathlib.Path, help="a run directory (config.yaml + params.msgpack)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to roll out (default 3)")
    parser.add_argument("--out", type=pathlib.Path, help="output .mp4 (default <run_dir>/videos/rollout.mp4)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--params", type=pathlib.Path, help="a params file (default <run_dir>/params.msgpack)")
    source.add_argument("--checkpoint", help="a training checkpoint: an epoch number or 'latest'")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--steps", type=int, help="steps per episode (default: env.episode_length of the run)")
    parser.add_argument("--fps", type=int, help="frames per second (default: 1 / the env's control step, or 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts and goals")
    parser.add_argument("--camera", help="a named camera of the MuJoCo model (Brax/MJX tasks)")
    parser.add_argument("--train-env", action="store_true", help="roll out on the training env, not the eval env")
    parser.add_argument("--no-html", action="store_true", help="skip Brax's HTML viewer for Brax tasks")
    args = parser.parse_args(argv)
    configure_gl()  # before anything imports MuJoCo
    enable_compilation_cache()

    out = args.out or args.run_dir / "videos" / "rollout.mp4"
    if out.suffix.lower() != ".mp4":
        print(f"crl-render: --out {out}: write an .mp4 file", file=sys.stderr)
        return 2
    try:
        if args.checkpoint is not None:
            cfg = load_config(args.run_dir)
            env, eval_env = build_envs(cfg)
            trainer = Trainer(cfg, env, eval_env)
            params = load_checkpoint_params(args.run_dir, trainer, args.checkpoint)
        else:
            cfg, trainer, params = load_run(args.run_dir, args.params)
        result = render_rollouts(
            trainer, params, trainer.env if args.train_env else trainer.eval_env, args.episodes, out,
            steps=args.steps, width=args.width, height=args.height, fps=args.fps, seed=args.seed,
            camera=args.camera, html=not args.no_html,
        )
    except (RenderError, CollectError, ConfigError, ValueError, GLBackendError) as err:
        # ValueError includes crl.params_file.ParamsError (a damaged or another network's file)
        print(f"crl-render: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # MUJOCO_GL naming a backend whose library is absent breaks MuJoCo's import, wherever
        # it first happens (Brax imports MuJoCo while the env is built).
        gl_error = as_gl_error(err)
        if gl_error is None:
            raise
        print(f"crl-render: {gl_error}", file=sys.stderr)
        return 2
    extra = f" and {result['html']}" if "html" in result else ""
    print(
        f"crl-render: wrote {result['frames']} frames ({result['episodes']} episodes) to {result['video']}{extra}; "
        f"time at goal per episode: {', '.join(f'{t:.0f}' for t in result['time_at_goal'])}"
    )
    return 0


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
