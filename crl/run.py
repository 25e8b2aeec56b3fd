"""Run a whole training: build env and trainer, loop over epochs, evaluate, log, checkpoint.

This is the library's front door (usable from a notebook without Hydra):

    from crl.config import from_dict
    from crl.run import run_training
    summary = run_training(from_dict({"env": {"id": "point_u_maze"}}), "runs/try")

Re-running with the same run dir continues from the newest intact checkpoint: the state
is restored exactly (with the replay buffer) and the epochs logged after that checkpoint
are dropped from metrics.csv and TensorBoard before they are recomputed.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
import shutil
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

import envs
from crl.checkpoint import Checkpointer
from crl.config import Config, ConfigError, validate_with_env
from crl.logger import MetricsLogger
from crl.networks import param_count
from crl.train import Trainer

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class NonFiniteError(RuntimeError):
    """Training produced NaN or inf; the message names the epoch, env step and metric."""


def build_envs(cfg: Config):
    """The training env and the evaluation env (its `_eval` variant where configured)."""
    # Env families raise KeyError/ValueError whose message starts with the config key.
    try:
        env = envs.make(cfg.env.id, episode_length=cfg.env.episode_length, **cfg.env.params)
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(str(err.args[0] if err.args else err)) from None
    eval_env = env
    if cfg.env.eval_id:
        try:
            eval_env = envs.make(cfg.env.eval_id, episode_length=cfg.env.episode_length, **cfg.env.params)
        except (KeyError, ValueError, TypeError) as err:
            message = str(err.args[0] if err.args else err)
            raise ConfigError(message.replace("env.id:", "env.eval_id:", 1)) from None
    validate_with_env(cfg, env.spec)
    if eval_env is not env:
        if eval_env.state_dim != env.state_dim or eval_env.goal_indices != env.goal_indices:
            raise ConfigError(
                f"env.eval_id: {cfg.env.eval_id!r} is not allowed; its state/goal layout differs from {cfg.env.id!r}"
            )
    return env, eval_env


# -- the output location -----------------------------------------------------------------


def _state_bytes(trainer: Trainer) -> int:
    shapes = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def check_output_location(cfg: Config, run_dir: pathlib.Path, trainer: Trainer) -> None:
    """Fail now, with one line, if the run dir cannot be written or cannot hold checkpoints."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"hydra.run.dir: {str(run_dir)!r} is not writable ({err.strerror or err})") from None
    state = _state_bytes(trainer)
    if not cfg.checkpoint.include_buffer:
        state -= trainer.capacity * cfg.train.num_envs * (trainer.state_dim + trainer.action_size + 1) * 4
    # keep + 1 checkpoints exist for a moment while the newest is written
    need = (cfg.checkpoint.keep + 1) * state + (64 << 20)
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise ConfigError(
            f"hydra.run.dir: {str(run_dir)!r} has {free / 2**30:.2f} GiB free; checkpoints need about "
            f"{need / 2**30:.2f} GiB (checkpoint.keep={cfg.checkpoint.keep}, checkpoint.include_buffer="
            f"{str(cfg.checkpoint.include_buffer).lower()})"
        )


def _check_same_config(cfg: Config, run_dir: pathlib.Path) -> None:
    """A run dir belongs to one configuration: resuming it with another is refused."""
    path = run_dir / "run_config.json"
    mine = json.loads(json.dumps(cfg.to_dict()))
    if path.exists():
        theirs = json.loads(path.read_text())
        ignore = {"logging", "checkpoint"}  # how a run is logged/saved may change on resume
        for section in sorted(set(mine) | set(theirs)):
            if section in ignore | {"video"}:
                continue
            a, b = mine.get(section), theirs.get(section)
            if a != b:
                if isinstance(a, dict) and isinstance(b, dict):
                    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
                    a, b, section = a.get(key), b.get(key), f"{section}.{key}"
                raise ConfigError(
                    f"{section}: {a!r} differs from {b!r} of the run already in {str(run_dir)!r}; "
                    "use a new hydra.run.dir or the same config"
                )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mine, indent=2))
    tmp.replace(path)


def _truncate_csv(path: pathlib.Path, last_epoch: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they are recomputed)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r and int(r[0]) <= last_epoch]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *keep])
    tmp.replace(path)


def _last_csv_row(path: pathlib.Path) -> dict:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()} if rows else {}


# -- signals -----------------------------------------------------------------------------


class _StopRequest:
    """Remembers a scheduler's stop signal until the running epoch ends; then the caller
    checkpoints and lets the signal do what it would have done (exit, or submitit's requeue)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self):
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they were
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now, the last checkpoint stands
            self._restore()
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        log.warning("received signal %d: checkpointing at the end of this epoch", signum)

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()
        return False

    def forward(self) -> None:
        """Re-deliver the signal to the handlers that were installed before ours."""
        self._restore()
        os.kill(os.getpid(), self.signum)


def _write_video(cfg: Config, run_dir: pathlib.Path, trainer: Trainer, ts, name: str) -> None:
    from crl.render import render_run_video

    params = jax.device_get({"actor": ts.actor_params, "critic": ts.critic_params, "log_alpha": ts.log_alpha})
    try:
        info = render_run_video(run_dir, cfg, params, cfg.video.episodes, pathlib.Path("videos") / name,
                                trainer=trainer, width=cfg.video.width, height=cfg.video.height, seed=cfg.seed)
        log.info("video: %s (%d frames)", info["video"], info["frames"])
    except Exception as err:  # a video must never cost the run
        log.warning("video %s failed: %s: %s", name, err.__class__.__name__, err)


# -- the loop ----------------------------------------------------------------------------


def _first_non_finite(metrics: dict, params_finite: bool) -> str | None:
    for name, value in metrics.items():
        if not np.isfinite(value):
            return f"train/{name}"
    return None if params_finite else "parameters"


def run_training(
    cfg: Config, run_dir: str | pathlib.Path, progress: bool | None = None, files: dict[str, str] | None = None
) -> dict:
    """Train (or resume), writing TensorBoard events, metrics.csv, checkpoints and
    params.msgpack into `run_dir`. Returns the last epoch's metrics row.

    `files` (name -> text) are written into the run dir once the config is accepted
    (the entry point passes the composed config.yaml)."""
    run_dir = pathlib.Path(run_dir)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    check_output_location(cfg, run_dir, trainer)
    _check_same_config(cfg, run_dir)
    for name, text in (files or {}).items():
        (run_dir / name).write_text(text)
    t = cfg.train

    key = jax.random.PRNGKey(cfg.seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    ts = trainer.init(k_init)
    sizes = {
        "actor_params": param_count(ts.actor_params),
        "critic_params": param_count(ts.critic_params),
        **cfg.schedule(),  # the schedule rule and pipeline options, with the resulting numbers
        "buffer_rows": trainer.capacity,
        "devices": [str(d) for d in jax.devices()],
    }
    (run_dir / "run_info.json").write_text(json.dumps(sizes, indent=2))

    checkpointer = Checkpointer(run_dir / "checkpoints", cfg.checkpoint.keep, cfg.checkpoint.include_buffer)
    restored = checkpointer.restore_latest(ts) if cfg.checkpoint.resume else None
    start_epoch, purge_step = 0, None
    if restored is None:
        ts = trainer.prefill(ts)
        if (run_dir / "metrics.csv").exists() or (run_dir / "tensorboard").exists():
            purge_step = 0  # a previous attempt died before its first checkpoint
    else:
        ts, start_epoch = restored.state, restored.epoch
        purge_step = restored.env_steps + 1
        if restored.include_buffer:
            log.info("resuming exactly from %s (epoch %d)", restored.path.name, start_epoch)
        else:
            env_steps = ts.env_steps
            ts = trainer.prefill(ts).replace(env_steps=env_steps)
            log.warning(
                "resuming from %s (epoch %d) WITHOUT its replay buffer (checkpoint.include_buffer=false): "
                "refilled with %d %s steps per env; this resume is not exact",
                restored.path.name, start_epoch, t.prefill_unrolls * t.unroll_length,
                "random" if t.prefill_policy == "random" else "actor",
            )
    _truncate_csv(run_dir / "metrics.csv", start_epoch)

    logger = MetricsLogger(run_dir, cfg.logging.tensorboard, cfg.logging.csv, purge_step=purge_step)
    show = cfg.logging.progress_bar if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=t.num_epochs, initial=start_epoch, desc=cfg.env.id, unit="epoch", dynamic_ncols=True)

    # wall_time continues from the resumed run's last logged value
    start = time.perf_counter() - float(_last_csv_row(run_dir / "metrics.csv").get("wall_time", 0.0))
    row: dict = {}
    last_saved = start_epoch
    with _StopRequest() as stop:
        try:
            for epoch in range(start_epoch, t.num_epochs):
                epoch_start = time.perf_counter()
                ts, train_metrics, params_finite = trainer.train_epoch(ts)
                train_metrics, params_finite = jax.device_get((train_metrics, params_finite))
                epoch_time = time.perf_counter() - epoch_start
                eval_metrics = jax.device_get(trainer.evaluate(ts.actor_params, jax.random.fold_in(k_eval, epoch)))
                env_steps = int(ts.env_steps)
                row = {
                    "epoch": epoch + 1,
                    "env_steps": env_steps,
                    "sgd_steps": int(ts.sgd_steps),
                    "wall_time": time.perf_counter() - start,
                    **{f"eval/{k}": float(v) for k, v in eval_metrics.items()},
                    **{f"train/{k}": float(v) for k, v in train_metrics.items()},
                    "train/env_steps_per_second": sizes["env_steps_per_epoch"] / epoch_time,
                    "train/sgd_steps_per_second": cfg.training_steps_per_epoch * cfg.sgd_steps_per_training_step / epoch_time,
                }
                logger.log(env_steps, row)
                bad = _first_non_finite(train_metrics, bool(params_finite))
                if bad:
                    last = checkpointer.complete_checkpoints()
                    raise NonFiniteError(
                        f"non-finite {bad} at epoch {epoch + 1} (env step {env_steps}); stopped without "
                        f"checkpointing; last good checkpoint: {last[-1] if last else 'none'}"
                    )
                if bar is not None:
                    bar.set_postfix(
                        env_steps=env_steps,
                        sps=f"{row['train/env_steps_per_second']:.0f}",
                        time_at_goal=f"{row['eval/time_at_goal']:.1f}",
                    )
                    bar.update(1)
                done = epoch + 1 == t.num_epochs
                if (epoch + 1) % cfg.checkpoint.every_epochs == 0 or done or stop.signum is not None:
                    checkpointer.save(ts, epoch + 1, env_steps)
                    last_saved = epoch + 1
                if cfg.video.enabled and cfg.video.every_epochs and (epoch + 1) % cfg.video.every_epochs == 0:
                    _write_video(cfg, run_dir, trainer, ts, f"epoch_{epoch + 1:06d}.mp4")
                if stop.signum is not None and not done:
                    log.warning("stopping after epoch %d on signal %d (checkpoint saved)", last_saved, stop.signum)
                    break
        finally:
            if bar is not None:
                bar.close()
            logger.close()
        if stop.signum is not None and last_saved < t.num_epochs:
            signum = stop.signum
            stop.forward()  # default action: the process ends; submitit: requeue
            raise SystemExit(128 + signum)  # a handler that returned: still stop here
    if not row:  # the run had already finished: report its last logged epoch
        row = _last_csv_row(run_dir / "metrics.csv")

    if cfg.video.enabled and start_epoch < t.num_epochs:
        _write_video(cfg, run_dir, trainer, ts, "final.mp4")
    if cfg.logging.save_params:
        params = {"actor": ts.actor_params, "critic": ts.critic_params, "log_alpha": ts.log_alpha}
        tmp = run_dir / "params.msgpack.tmp"
        tmp.write_bytes(serialization.to_bytes(jax.device_get(params)))
        tmp.replace(run_dir / "params.msgpack")
    return row


def load_params(run_dir: str | pathlib.Path, trainer: Trainer) -> dict:
    """Read params.msgpack back into the trainer's parameter structure."""
    template = jax.eval_shape(trainer.init_learner, jax.random.PRNGKey(0))
    zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
    target = {"actor": zeros["actor_params"], "critic": zeros["critic_params"], "log_alpha": np.zeros((), np.float32)}
    data = (pathlib.Path(run_dir) / "params.msgpack").read_bytes()
    return serialization.from_bytes(target, data)
