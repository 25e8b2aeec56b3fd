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
  `osmesa` (Debian's libosmesa6) otherwise. Brax tasks also get Brax's HTML viewer of
  the first episode next to the MP4 (`<out>.html`).

Parameters come from the run's params.msgpack, or `--params FILE`, or a training
checkpoint: `--checkpoint latest` or `--checkpoint N` (<run dir>/checkpoints/epoch_N;
runs keep the newest `checkpoint.keep` of them).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import pathlib
import sys
import types
import warnings

import numpy as np

GOAL_COLOR = (30, 190, 60)  # a green no other element of a frame uses
GOAL_RING_COLOR = (190, 235, 195)
POINT_COLOR = (215, 40, 40)
TRAIL_COLOR = (240, 170, 160)
WALL_COLOR = (70, 72, 84)
FLOOR_COLOR = (236, 234, 224)
OUTSIDE_COLOR = (255, 255, 255)


class RenderError(RuntimeError):
    """A run that cannot be rendered (no params, an env without a renderer, ...)."""


# -- GL backend for MuJoCo ------------------------------------------------------------------


def _has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


def configure_gl() -> str:
    """Pick MuJoCo's headless GL backend (egl with an NVIDIA GPU, else osmesa) unless
    MUJOCO_GL is set or a display is available. MuJoCo fixes its GL context class at
    import, so when it is already imported the class is swapped for the chosen one."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    if os.environ.get("DISPLAY"):
        return "glfw"
    backend = "egl" if _has_nvidia_gpu() else "osmesa"
    os.environ["MUJOCO_GL"] = backend
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    if "mujoco" in sys.modules:
        from mujoco.rendering.classic import gl_context

        gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
    return backend


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


def _pose(physics) -> dict:
    """What a frame needs from an env's physics: q (and qd, mocap positions) for
    MuJoCo-based envs, the (x, y) position for the point maze."""
    physics = getattr(physics, "pipeline", physics)  # an env wrapping its pipeline state
    if hasattr(physics, "q") and hasattr(physics, "qd"):  # a Brax (or Brax-MJX) pipeline state
        pose = {"q": physics.q, "qd": physics.qd}
    elif hasattr(physics, "qpos"):  # an MJX Data
        pose = {"q": physics.qpos, "qd": physics.qvel}
    else:
        return {"q": physics}  # the point maze: (x, y)
    mocap = getattr(physics, "mocap_pos", None)
    if mocap is not None and getattr(mocap, "size", 0):
        pose["mocap_pos"] = mocap  # goal markers, bins: bodies the physics moves by hand
    return pose


def rollout(trainer, actor_params, env, episodes: int, steps: int, seed: int = 0) -> Rollout:
    """Run the deterministic policy for `episodes` episodes of `steps` steps on `env`."""
    import jax
    import jax.numpy as jnp

    state_dim = env.state_dim

    @jax.jit
    def run(params, key):
        start = jax.vmap(env.reset)(jax.random.split(key, episodes))

        def step(carry, _):
            state, running = carry
            obs = state.obs
            action = trainer.policy_deterministic(params, obs[:, :state_dim], obs[:, state_dim:])
            nxt = jax.vmap(env.step)(state, action)
            still = running * (1.0 - nxt.done)
            return (nxt, still), (_pose(nxt.physics), nxt.metrics["success"], running)

        running0 = jnp.ones((episodes,), jnp.float32)
        _, (poses, success, running) = jax.lax.scan(step, (start, running0), None, length=steps)
        poses = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), _pose(start.physics), poses)
        success = jnp.concatenate([start.metrics["success"][None], success])
        # Frame 0 is the start; frame t > 0 is shown while the episode ran into step t.
        frames = 1 + jnp.sum(running, axis=0).astype(jnp.int32)
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731 - time-major -> episode-major
        return jax.tree.map(swap, poses), start.goal, swap(success), frames

    poses, goal, success, frames = jax.device_get(run(actor_params, jax.random.PRNGKey(seed)))
    return Rollout(
        pose={k: np.asarray(v) for k, v in poses.items()},
        goal=np.asarray(goal),
        success=np.asarray(success),
        frames=np.asarray(frames),
    )


# -- point mazes ----------------------------------------------------------------------------


class PointMazePainter:
    """Top-down frames of a point maze; the layout reads as in its text (row i down)."""

    def __init__(self, env, width: int, height: int):
        self.env = env
        p = env.params
        self.cell = float(p.cell_size)
        self.radius = float(p.point_radius)
        self.success_radius = float(p.success_radius)
        walls = np.asarray(env.maze.walls)
        n_rows, n_cols = walls.shape
        self.scale = min(height / (n_rows * self.cell), width / (n_cols * self.cell))
        self.off_row = (height - n_rows * self.cell * self.scale) / 2
        self.off_col = (width - n_cols * self.cell * self.scale) / 2
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        # World coordinates of every pixel centre: x along image rows, y along columns.
        self.px = (rows - self.off_row) / self.scale - self.cell / 2
        self.py = (cols - self.off_col) / self.scale - self.cell / 2
        ci = np.floor(self.px / self.cell + 0.5).astype(int)
        cj = np.floor(self.py / self.cell + 0.5).astype(int)
        inside = (ci >= 0) & (ci < n_rows) & (cj >= 0) & (cj < n_cols)
        wall = np.zeros_like(inside)
        wall[inside] = walls[ci[inside], cj[inside]]
        self.background = np.empty((height, width, 3), np.uint8)
        self.background[:] = OUTSIDE_COLOR
        self.background[inside] = FLOOR_COLOR
        self.background[wall] = WALL_COLOR
        # Markers are at least a few pixels wide, so they survive video compression.
        self.marker_px = max(4.0, 0.15 * self.cell * self.scale)

    def _disc(self, centre, radius: float) -> np.ndarray:
        return (self.px - centre[0]) ** 2 + (self.py - centre[1]) ** 2 <= radius**2

    def episode(self, positions: np.ndarray, goal: np.ndarray):
        """Yield one frame per position of one episode."""
        base = self.background.copy()
        base[self._disc(goal, self.success_radius) & (base != WALL_COLOR).any(-1)] = GOAL_RING_COLOR
        base[self._disc(goal, self.marker_px / self.scale)] = GOAL_COLOR
        trail = np.zeros(base.shape[:2], bool)
        point_r = max(self.radius, 0.6 * self.marker_px / self.scale)
        for xy in positions:
            frame = base.copy()
            frame[trail] = TRAIL_COLOR
            frame[self._disc(xy, point_r)] = POINT_COLOR
            trail |= self._disc(xy, 0.35 * point_r)
            yield frame


# -- MuJoCo-based tasks ----------------------------------------------------------------------


def _arm_model(env):
    model = getattr(env, "model", None)  # envs.manipulation keeps (mj, sys) in an ArmModel
    return model if hasattr(model, "mj") and hasattr(model, "sys") else None


def mujoco_model(env):
    """The MuJoCo model to draw an env with (every maze wall in place for Brax mazes)."""
    if hasattr(env, "render_system"):
        return env.render_system().mj_model
    if _arm_model(env) is not None:
        return _arm_model(env).mj
    sys_ = getattr(env, "sys", None)
    if sys_ is not None and getattr(sys_, "mj_model", None) is not None:
        return sys_.mj_model
    if getattr(env, "mj_model", None) is not None:
        return env.mj_model
    raise RenderError(f"{env.env_id}: the env exposes no MuJoCo model (render_system(), sys.mj_model or mj_model)")


def brax_system(env):
    """The Brax System for the HTML viewer, or None for envs that are not Brax-pipeline
    based (the MJX arm: its bodies do not map onto Brax links one to one)."""
    if hasattr(env, "render_system"):
        return env.render_system()
    if _arm_model(env) is not None:
        return None
    sys_ = getattr(env, "sys", None)
    return sys_ if sys_ is not None and hasattr(sys_, "link_names") else None


class MujocoPainter:
    """Offscreen MuJoCo frames with the goal drawn as a translucent green sphere."""

    def __init__(self, env, width: int, height: int, camera: str | None = None):
        configure_gl()
        import mujoco

        self.mujoco = mujoco
        self.model = mujoco_model(env)
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), width)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), height)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        self.goal_radius = max(float(env.success_radius), 0.03)
        self.goal_height = 0.25 * self.goal_radius
        self.follow = False
        camera = camera if camera is not None else getattr(env, "render_camera", None)  # the arm names one
        if camera is not None:
            self.camera = camera
        else:
            self.camera = mujoco.MjvCamera()
            mujoco.mjv_defaultFreeCamera(self.model, self.camera)
            # A walking robot: keep both the torso (body 1) and the goal in view.
            self.follow = hasattr(env, "torso_xy")
            self.camera.elevation = -55.0 if self.follow else self.camera.elevation
            self.camera.azimuth = 90.0 if self.follow else self.camera.azimuth

    def _goal_position(self, goal: np.ndarray) -> np.ndarray:
        goal = np.asarray(goal, np.float64).reshape(-1)
        if goal.size >= 3:
            return goal[:3]
        return np.array([goal[0], goal[1], self.goal_height])

    def frame(self, q: np.ndarray, goal: np.ndarray, mocap_pos: np.ndarray | None = None) -> np.ndarray:
        mj = self.mujoco
        self.data.qpos[:] = np.asarray(q, np.float64)[: self.model.nq]
        if mocap_pos is not None and self.model.nmocap:
            self.data.mocap_pos[:] = np.asarray(mocap_pos, np.float64).reshape(self.model.nmocap, 3)
        mj.mj_forward(self.model, self.data)
        if self.follow:
            torso = np.array(self.data.xpos[1])
            target = self._goal_position(goal)
            self.camera.lookat[:] = 0.5 * (torso + target)
            self.camera.lookat[2] = 0.5
            separation = float(np.linalg.norm(torso[:2] - target[:2]))
            self.camera.distance = 4.0 + 1.2 * separation
        self.renderer.update_scene(self.data, camera=self.camera)
        scene = self.renderer.scene
        if scene.ngeom < scene.maxgeom:
            mj.mjv_initGeom(
                scene.geoms[scene.ngeom],
                mj.mjtGeom.mjGEOM_SPHERE,
                np.array([self.goal_radius, 0.0, 0.0]),
                self._goal_position(goal),
                np.eye(3).ravel(),
                np.array([GOAL_COLOR[0] / 255, GOAL_COLOR[1] / 255, GOAL_COLOR[2] / 255, 0.6], np.float32),
            )
            scene.ngeom += 1
        return self.renderer.render().copy()

    def episode(self, qs: np.ndarray, goal: np.ndarray, mocap_pos: np.ndarray | None = None):
        for t, q in enumerate(qs):
            yield self.frame(q, goal, None if mocap_pos is None else mocap_pos[t])

    def close(self) -> None:
        self.renderer.close()


def write_brax_html(env, pose: dict, frames: int, out: pathlib.Path) -> pathlib.Path | None:
    """Brax's HTML viewer of one episode (Brax-based envs only); None when not possible."""
    system = brax_system(env)
    if system is None or "qd" not in pose:
        return None
    import jax
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
    dt = getattr(env, "dt", None)
    if isinstance(dt, (int, float)) and dt > 0:
        return int(min(60, max(10, round(1.0 / dt))))
    return 20


def write_video(frames, out: pathlib.Path, fps: int) -> int:
    """Write uint8 (H, W, 3) frames as an H.264 MP4; returns the number of frames."""
    import imageio.v2 as imageio

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
    out = pathlib.Path(out)
    steps = int(steps or trainer.cfg.env.episode_length)
    roll = rollout(trainer, params["actor"], env, episodes, steps, seed)
    if getattr(env, "maze", None) is not None and env.state_dim == 2 and hasattr(env, "params"):
        painter = PointMazePainter(env, width, height)
        close = None
    else:
        painter = MujocoPainter(env, width, height, camera)
        close = painter.close

    def all_frames():
        for e in range(episodes):
            n = int(roll.frames[e])
            if "mocap_pos" in roll.pose:
                yield from painter.episode(roll.pose["q"][e, :n], roll.goal[e], roll.pose["mocap_pos"][e, :n])
            else:
                yield from painter.episode(roll.pose["q"][e, :n], roll.goal[e])

    try:
        count = write_video(all_frames(), out, fps or _default_fps(env))
    finally:
        if close is not None:
            close()
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
        from crl.run import build_envs
        from crl.train import Trainer

        env, eval_env = build_envs(cfg)
        trainer = Trainer(cfg, env, eval_env)
    return render_rollouts(trainer, params, trainer.eval_env, episodes, out, **options)


# -- the console script ----------------------------------------------------------------------


def load_checkpoint_params(run_dir: pathlib.Path, trainer, checkpoint: str) -> dict:
    """Parameters of a training checkpoint in <run_dir>/checkpoints: `latest` (the newest
    intact one) or an epoch number (checkpoints/epoch_<N>). Same structure as
    `crl.run.load_params`: {"actor", "critic", "log_alpha"}."""
    import jax

    try:
        ckpt = importlib.import_module("crl.checkpoint")
    except ModuleNotFoundError:
        raise RenderError(
            f"--checkpoint {checkpoint}: this install writes no training checkpoints; "
            "render the final parameters (params.msgpack, the default) or pass --params"
        ) from None
    if hasattr(ckpt, "restore_params"):  # a dedicated reader, where the module has one
        return ckpt.restore_params(run_dir, trainer, None if checkpoint == "latest" else int(checkpoint))
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
        import orbax.checkpoint as ocp

        target = template if manifest.get("include_buffer", True) else template.replace(buffer=None)
        state = ocp.StandardCheckpointer().restore(path / "state", target)
    return {"actor": state.actor_params, "critic": state.critic_params, "log_alpha": state.log_alpha}


def _enable_compilation_cache() -> None:
    """The persistent XLA cache `crl-train` uses (CRL_JAX_CACHE; `off` disables it): a
    rollout compiles the env step, which takes tens of seconds for Brax/MJX tasks."""
    where = os.environ.get("CRL_JAX_CACHE", str(pathlib.Path.home() / ".cache" / "crl" / "jax"))
    if where.lower() == "off":
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


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
    _enable_compilation_cache()

    from crl.collect import CollectError, load_config, load_run
    from crl.config import ConfigError

    try:  # the arm's XLA CPU flag must be set before jax starts its backend (envs/manipulation/xla_flags.py)
        if str(load_config(args.run_dir).env.id).startswith("arm_"):
            import envs.manipulation  # noqa: F401
    except (CollectError, ConfigError, OSError, AttributeError):
        pass  # reported below by load_run

    out = args.out or args.run_dir / "videos" / "rollout.mp4"
    if out.suffix.lower() != ".mp4":
        print(f"crl-render: --out {out}: write an .mp4 file", file=sys.stderr)
        return 2
    try:
        if args.checkpoint is not None:
            from crl.run import build_envs
            from crl.train import Trainer

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
    except (RenderError, CollectError, ConfigError, ValueError) as err:
        print(f"crl-render: {err}", file=sys.stderr)
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
