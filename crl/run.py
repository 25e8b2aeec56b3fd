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

import contextlib
import csv
import json
import logging
import pathlib
import shutil
import signal
import time
from typing import Sequence

import jax
import numpy as np
import yaml

import envs
from crl import rundir
from crl.callbacks import (  # noqa: F401  NonFiniteError: re-exported for callers of run_training
    Checkpointing,
    EpochLog,
    MetricsFiles,
    NonFiniteError,
    NonFiniteGuard,
    SaveParams,
    StopOnSignal,
    finished,
)
from crl.checkpoint import Checkpointer
from crl.config import Config, ConfigError, validate_with_env
from crl.loop import Callback, train_loop
from crl.networks import param_count
from crl.params_file import read_params
from crl.train import Trainer

log = logging.getLogger(__name__)


def build_envs(cfg: Config):
    """The training env and the evaluation env (its `_eval` variant where configured)."""
    # Env families raise KeyError/ValueError whose message starts with the config key.
    try:
        env = envs.make(cfg.env.id, episode_length=cfg.env.episode_length, **cfg.env.params)
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(str(err.args[0] if err.args else err)) from None
    eval_env = env
    if cfg.env.eval_id or cfg.env.eval_params:
        # the eval env: env.eval_id (else env.id) with env.params updated by env.eval_params
        eval_params = {**cfg.env.params, **cfg.env.eval_params}
        try:
            eval_env = envs.make(cfg.env.eval_id or cfg.env.id, episode_length=cfg.env.episode_length, **eval_params)
        except (KeyError, ValueError, TypeError) as err:
            message = str(err.args[0] if err.args else err)
            message = message.replace("env.id:", "env.eval_id:", 1)
            for key in cfg.env.eval_params:  # a bad eval-only value names the key it came from
                message = message.replace(f"env.params.{key}:", f"env.eval_params.{key}:", 1)
            raise ConfigError(message) from None
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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the run at a safe point with a checkpoint; `str()` says where
    and how to resume. A KeyboardInterrupt, so a script that does not catch it still stops."""

    def __init__(self, run_dir: pathlib.Path, checkpoint: pathlib.Path | None, resume: str):
        self.run_dir, self.checkpoint, self.resume = run_dir, checkpoint, resume
        saved = f"checkpoint {checkpoint.name} saved" if checkpoint else "no new checkpoint"
        super().__init__(f"interrupted; {saved} in {run_dir}; resume with: {resume}")


def run_training(
    cfg: Config, run_dir: str | pathlib.Path, files: dict[str, str] | None = None,
    callbacks: Sequence[Callback] = (), resume_command: str | None = None,
) -> dict:
    """Train (or resume), writing TensorBoard events, metrics.csv, checkpoints,
    params.msgpack, config.yaml and train.log into `run_dir`. Returns the last epoch's
    metrics row.

    `files` (name -> text) are written into the run dir once the config is accepted
    (default: config.yaml, the validated config). `callbacks` (crl.loop.Callback) see
    every epoch after it is logged, guarded and checkpointed: the applications' progress
    bar, videos and W&B logger (crl/apps/callbacks.py). `resume_command` is how the log
    and `Interrupted` tell the user to continue the run (default: this call again).

    The run holds a lock on `run_dir` for its whole life (crl/rundir.py): a second run
    there is refused, as is a directory that is not one of our runs, or a run whose
    checkpoints are gone (unless `checkpoint.restart`). Ctrl-C stops at the next safe
    point with a checkpoint and raises `Interrupted`.
    """
    run_dir = pathlib.Path(run_dir).absolute()
    resume_command = resume_command or f"run_training(cfg, {str(run_dir)!r}) again"
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    rundir.check_is_run_dir(run_dir)
    check_output_location(cfg, run_dir, trainer)
    with rundir.RunLock.acquire(run_dir), _log_file(run_dir / "train.log"):
        return _run_locked(cfg, run_dir, trainer, files, callbacks, resume_command)


def _run_locked(cfg, run_dir, trainer, files, callbacks, resume_command) -> dict:
    checkpointer = Checkpointer(run_dir / "checkpoints", cfg.checkpoint.keep, cfg.checkpoint.include_buffer)
    checkpointer.remove_partial()
    has_checkpoint = bool(checkpointer.complete_checkpoints())
    if cfg.checkpoint.restart and not has_checkpoint:
        rundir.clear_run(run_dir)
    elif cfg.checkpoint.restart:
        # Only a run whose checkpoints are gone is started over: a requeued job that
        # repeats the command must never lose what it trained since.
        log.warning("checkpoint.restart=true ignored: %s has checkpoints, resuming from them", run_dir)
    else:
        rundir.check_resumable(run_dir, has_checkpoint, cfg.first_checkpoint_epoch)
    _check_same_config(cfg, run_dir)
    files = {"config.yaml": config_yaml(cfg)} if files is None else files
    for name, text in files.items():
        (run_dir / name).write_text(text)
    t = cfg.train
    log.info("run directory %s", run_dir)

    key = jax.random.PRNGKey(cfg.seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    ts = trainer.init(k_init)
    actor_params = param_count(ts.actor_params)
    sizes = {
        "agent": cfg.agent.name,
        "actor_params": actor_params,
        # everything else the run learns and saves (the agent's critics; 0 for GCSL)
        "critic_params": param_count(trainer.params(ts)) - actor_params,
        **cfg.schedule(),  # the schedule rule and pipeline options, with the resulting numbers
        "buffer_rows": trainer.capacity,
        "devices": [str(d) for d in jax.devices()],
        "versions": stack_versions(),
    }
    (run_dir / "run_info.json").write_text(json.dumps(sizes, indent=2))

    ts, resumed, purge_step = _start_or_resume(cfg, run_dir, trainer, checkpointer, ts)
    start_epoch = resumed.epoch if resumed else 0
    _truncate_csv(run_dir / "metrics.csv", start_epoch)

    # wall_time continues from the resumed run's last logged value
    wall_start = time.perf_counter() - float(_last_csv_row(run_dir / "metrics.csv").get("wall_time", 0.0))
    stop = StopOnSignal()
    checkpointing = Checkpointing(checkpointer, cfg.checkpoint.every_epochs)
    loop_callbacks = [
        stop,
        MetricsFiles(run_dir, cfg.logging.tensorboard, cfg.logging.csv, purge_step),
        EpochLog(),
        NonFiniteGuard(checkpointer),
        checkpointing,
        *callbacks,
        *([SaveParams(run_dir, trainer.params)] if cfg.logging.save_params else []),
    ]
    ts, progress = train_loop(
        trainer, ts, k_eval, start_epoch, t.num_epochs, loop_callbacks, wall_start,
        start_phase=resumed.phase if resumed else 0, phase_metrics=resumed.phase_metrics if resumed else (),
    )
    if stop.signum is not None and not finished(progress):
        signum = stop.signum
        saved = checkpointing.last_saved
        log.warning(
            "stopped on %s; %s; resume with: %s", signal.Signals(signum).name,
            f"checkpoint {saved.name} saved" if saved else "no new checkpoint", resume_command,
        )
        if signum == signal.SIGINT:
            raise Interrupted(run_dir, saved, resume_command)
        stop.forward()  # default action: the process ends; submitit: requeue
        raise SystemExit(128 + signum)  # a handler that returned: still stop here
    log.info("done: %d epochs", t.num_epochs)
    # the run had already finished: report its last logged epoch
    return progress.metrics if progress is not None else _last_csv_row(run_dir / "metrics.csv")


STACK = ("jax", "jaxlib", "flax", "optax", "brax", "mujoco", "mujoco-mjx", "orbax-checkpoint", "numpy")


def stack_versions() -> dict[str, str | None]:
    """The installed versions of the packages that decide a run's numbers (run_info.json's
    `versions`; None where one is not installed), and Python's."""
    import platform
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in STACK:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_yaml(cfg: Config) -> str:
    """config.yaml: the validated config, every derived value resolved (what crl-render,
    crl-collect and `crl-train resume=` read back)."""
    return yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False)


@contextlib.contextmanager
def _log_file(path: pathlib.Path):
    """The run's log lines (this package's and its libraries' INFO and above) appended to
    train.log for the life of the run."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.setLevel(logging.INFO)
    crl_logger = logging.getLogger("crl")
    old_level = crl_logger.level
    if crl_logger.getEffectiveLevel() > logging.INFO:
        crl_logger.setLevel(logging.INFO)
    root, epochs = logging.getLogger(), logging.getLogger("crl.epochs")  # epochs: file only
    root.addHandler(handler)
    epochs.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        epochs.removeHandler(handler)
        crl_logger.setLevel(old_level)
        handler.close()


def _start_or_resume(cfg: Config, run_dir: pathlib.Path, trainer: Trainer, checkpointer: Checkpointer, ts):
    """(state, the Restored checkpoint or None, TensorBoard purge step): the newest intact
    checkpoint when there is one, else a fresh prefilled state."""
    restored = checkpointer.restore_latest(ts)
    if restored is None:
        # purge 0: a previous attempt died before its first checkpoint
        logged = (run_dir / "metrics.csv").exists() or (run_dir / "tensorboard").exists()
        return trainer.prefill(ts), None, (0 if logged else None)
    ts = restored.state
    where = f"{restored.path.name} (epoch {restored.epoch}" + (
        f" and {restored.phase} update phases of epoch {restored.epoch + 1})" if restored.phase else ")"
    )
    if restored.include_buffer:
        log.info("resuming exactly from %s", where)
    else:
        env_steps = ts.env_steps
        ts = trainer.prefill(ts).replace(env_steps=env_steps)
        log.warning(
            "resuming from %s WITHOUT its replay buffer (checkpoint.include_buffer=false): "
            "refilled with %d %s steps per env; this resume is not exact",
            where, cfg.train.prefill_unrolls * cfg.train.unroll_length,
            "random" if cfg.train.prefill_policy == "random" else "actor",
        )
    # TensorBoard hides events from the first step after the last whole epoch saved
    return ts, restored, _last_epoch_env_steps(cfg, restored) + 1


def _last_epoch_env_steps(cfg: Config, restored) -> int:
    """Env steps at the end of the last whole epoch in `restored` (a paused checkpoint's
    env steps include the phases of the cut epoch)."""
    return restored.env_steps - restored.phase * cfg.train.env_steps_per_training_step


def load_params(run_dir: str | pathlib.Path, trainer: Trainer) -> dict:
    """Read params.msgpack back into the trainer's parameter structure. A file that cannot
    be read, or holds another network's parameters (depth, width), raises
    `crl.params_file.ParamsError`: one line naming the file (and the differing shapes)."""
    template = jax.eval_shape(trainer.init_params, jax.random.PRNGKey(0))
    return read_params(pathlib.Path(run_dir) / "params.msgpack", template)
