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
import dataclasses
import json
import logging
import pathlib
import signal
import time
from typing import Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import envs
from crl import agents, plan, rundir
from crl import dataset as fixed_data
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
from crl.checkpoint import Checkpointer, CheckpointError, checkpoint_name
from crl.config import Config, ConfigError, validate_with_env
from crl.loop import Callback, train_loop
from crl.networks import param_count
from crl.params_file import ParamsError, read_params
from crl.seeds import PerSeed, SeedBatch, seed_progress, stack
from crl.train import Trainer

log = logging.getLogger(__name__)


def build_envs(cfg: Config):
    """The training env and the evaluation env: `env.eval_id` (else `env.id`) with
    `env.params` updated by `env.eval_params`, as the env's `evaluation_env()` (stitching
    tasks evaluate on their far pairs). A paper-code stitching id (`ant_u_maze_gen_1f2f3f`)
    sets its pair distances for both envs; as `env.eval_id` it names the evaluated ones."""
    # Env families raise KeyError/ValueError whose message starts with the config key.
    try:
        train_id, id_params = envs.resolve_id(cfg.env.id)
        params = {**id_params, **cfg.env.params}
        env = envs.make(cfg.env.id, episode_length=cfg.env.episode_length, **cfg.env.params)
        eval_env = env.evaluation_env()
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(str(err.args[0] if err.args else err)) from None
    if cfg.env.eval_id or cfg.env.eval_params:
        eval_id, eval_id_params = envs.resolve_id(cfg.env.eval_id or train_id, evaluation=True)
        eval_params = {**params, **eval_id_params, **cfg.env.eval_params}
        try:
            eval_env = envs.make(eval_id, episode_length=cfg.env.episode_length, **eval_params).evaluation_env()
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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the run at a safe point with a checkpoint; `str()` says where
    and how to resume. A KeyboardInterrupt, so a script that does not catch it still stops."""

    def __init__(self, run_dir: pathlib.Path, checkpoint: pathlib.Path | None, resume: str):
        self.run_dir, self.checkpoint, self.resume = run_dir, checkpoint, resume
        saved = f"checkpoint {checkpoint.name} saved" if checkpoint else "no new checkpoint"
        super().__init__(f"interrupted; {saved} in {run_dir}; resume with: {resume}")


CallbackSpec = Union[Sequence[Callback], Callable[[Config, pathlib.Path], Sequence[Callback]]]


def run_training(
    cfg: Config, run_dir: str | pathlib.Path, files: dict[str, str] | None = None,
    callbacks: CallbackSpec = (), resume_command: str | None = None,
) -> dict:
    """Train (or resume), writing TensorBoard events, metrics.csv, checkpoints,
    params.msgpack, config.yaml and train.log into `run_dir`. Returns the last epoch's
    metrics row.

    `files` (name -> text) are written into the run dir once the config is accepted
    (default: config.yaml, the validated config). `callbacks` (crl.loop.Callback) see
    every epoch after it is logged, guarded and checkpointed: the applications' progress
    bar, videos and W&B logger (crl/apps/callbacks.py); or a function (config, run dir)
    -> callbacks, called for each seed of a batched run with that seed's. `resume_command`
    is how the log and `Interrupted` tell the user to continue the run (default: this
    call again).

    `train.num_seeds` = N > 1 trains seeds `seed` .. `seed + N - 1` in one program
    (crl/seeds.py): each seed is a complete run directory of its own, `run_dir/seed_<s>/`,
    as `run_training` with that seed and one seed would write it; `run_dir` holds the
    batched run's config, run_config.json and train.log. Returns seed `seed`'s row.

    The run holds a lock on `run_dir` (and on each seed's directory) for its whole life
    (crl/rundir.py): a second run there is refused, as is a directory that is not one of
    our runs, or a run whose checkpoints are gone (unless `checkpoint.restart`). Ctrl-C
    stops at the next safe point with a checkpoint and raises `Interrupted`.
    """
    run_dir = pathlib.Path(run_dir).absolute()
    resume_command = resume_command or f"run_training(cfg, {str(run_dir)!r}) again"
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env, *load_inputs(cfg, env))
    plan.check_fits(trainer, seeds=cfg.train.num_seeds)  # too large for the device: one line, before compiling
    rundir.check_is_run_dir(run_dir)
    seed_cfgs = seed_configs(cfg)
    for seed_cfg in seed_cfgs if len(seed_cfgs) > 1 else ():
        rundir.check_is_run_dir(seed_dir(run_dir, seed_cfg.seed))
    rundir.check_output_location(cfg, run_dir, trainer)
    with contextlib.ExitStack() as held:
        held.enter_context(rundir.RunLock.acquire(run_dir))
        if len(seed_cfgs) > 1:
            for seed_cfg in seed_cfgs:
                where = seed_dir(run_dir, seed_cfg.seed)
                where.mkdir(parents=True, exist_ok=True)
                held.enter_context(rundir.RunLock.acquire(where))
        held.enter_context(_log_file(run_dir / "train.log"))
        if len(seed_cfgs) == 1:
            return _run_one(cfg, run_dir, trainer, files, callbacks, resume_command)
        return _run_seeds(cfg, seed_cfgs, run_dir, trainer, files, callbacks, resume_command)


def load_inputs(cfg: Config, env) -> tuple[dict | None, dict | None]:
    """(the fixed data of an offline run, the parameters to start from) as the config names
    them (`train.dataset`, `train.init_from`), each checked against this run's env and
    networks: a dataset or parameters that do not fit raise a one-line ConfigError."""
    dataset = start_params = None
    agent = agents.make(cfg, env)
    if cfg.offline:
        dataset = fixed_data.load(cfg.train.dataset, env.state_dim, env.action_size, len(env.goal_indices))
        if "goals" not in dataset and agent.relabelling.future_fraction < 1.0:
            raise ConfigError(
                f"train.dataset: {cfg.train.dataset!r} has no field 'goals' (the goals the env commanded), which "
                f"agent {cfg.agent.name} without HER needs; use a dataset with goals, or agent.her=true"
            )
    if cfg.train.init_from is not None:
        path = pathlib.Path(cfg.train.init_from).expanduser() / "params.msgpack"
        try:
            start_params = read_params(path, jax.eval_shape(agent.init_params, jax.random.PRNGKey(0)))
        except ParamsError as err:
            raise ConfigError(f"train.init_from: {err}") from None
    return dataset, start_params


def seed_configs(cfg: Config) -> list[Config]:
    """The one-seed configs of a run: itself, or for `train.num_seeds` = N > 1 the N runs
    with seeds `seed` .. `seed + N - 1` and one seed each."""
    n = cfg.train.num_seeds
    if n == 1:
        return [cfg]
    return [dataclasses.replace(cfg, seed=cfg.seed + i, train=dataclasses.replace(cfg.train, num_seeds=1))
            for i in range(n)]


def seed_dir(run_dir: pathlib.Path, seed: int) -> pathlib.Path:
    """Where seed `seed` of a batched run writes its run."""
    return pathlib.Path(run_dir) / f"seed_{seed}"


@dataclasses.dataclass
class _Seat:
    """One seed's run: its directory, files, checkpoints, state and callbacks."""

    cfg: Config
    run_dir: pathlib.Path
    checkpointer: Checkpointer
    checkpointing: Checkpointing
    ts: object
    resumed: object  # the Restored checkpoint, or None for a fresh start
    key_eval: jax.Array
    callbacks: list
    wall_start: float


def _seat(cfg: Config, run_dir: pathlib.Path, trainer: Trainer, files, app_callbacks, newest: str | None = None,
          epoch_log_prefix: str = "") -> _Seat:
    """Everything one run sets up before its loop: refuse what cannot be resumed, write the
    config files and run_info.json, restore the newest intact checkpoint (none newer than
    `newest`) or prefill a fresh state, and build its callbacks (all but the stop signal)."""
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
    rundir.check_same_config(cfg, run_dir)
    files = {"config.yaml": config_yaml(cfg)} if files is None else files
    for name, text in files.items():
        (run_dir / name).write_text(text)

    key = jax.random.PRNGKey(cfg.seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    ts = trainer.init(k_init)
    disk = plan.checkpoint_sizes(cfg, plan.tree_bytes(ts), plan.tree_bytes(ts.buffer))
    log.info("run directory %s; %s", run_dir, plan.describe_checkpoints(cfg, disk))
    actor_params = param_count(ts.actor_params)
    sizes = {
        "agent": cfg.agent.name,
        "actor_params": actor_params,
        # everything else the run learns and saves (the agent's critics; 0 for GCSL)
        "critic_params": param_count(trainer.params(ts)) - actor_params,
        **cfg.schedule(),  # the schedule rule and pipeline options, with the resulting numbers
        "buffer_rows": trainer.capacity,
        **({"dataset": trainer.dataset_info} if cfg.offline else {}),
        **({"init_from": str(pathlib.Path(cfg.train.init_from).expanduser().absolute())} if cfg.train.init_from else {}),
        "devices": [str(d) for d in jax.devices()],
        "versions": stack_versions(),
    }
    (run_dir / "run_info.json").write_text(json.dumps(sizes, indent=2))

    ts, resumed, purge_step = _start_or_resume(cfg, run_dir, trainer, checkpointer, ts, newest)
    checkpointer.prepare(ts)  # the host memory saves copy into, made ready while the first epoch trains
    start_epoch = resumed.epoch if resumed else 0
    rundir.truncate_csv(run_dir / "metrics.csv", start_epoch)
    # wall_time continues from the resumed run's last logged value
    wall_start = time.perf_counter() - float(rundir.last_csv_row(run_dir / "metrics.csv").get("wall_time", 0.0))
    checkpointing = Checkpointing(checkpointer, cfg.checkpoint.every_epochs)
    own = app_callbacks(cfg, run_dir) if callable(app_callbacks) else app_callbacks
    callbacks = [
        MetricsFiles(run_dir, cfg.logging.tensorboard, cfg.logging.csv, purge_step, cfg.step_counter),
        EpochLog(epoch_log_prefix),
        NonFiniteGuard(checkpointer),
        checkpointing,
        *own,
        *([SaveParams(run_dir, trainer.params)] if cfg.logging.save_params else []),
    ]
    return _Seat(cfg, run_dir, checkpointer, checkpointing, ts, resumed, k_eval, callbacks, wall_start)


def _run_one(cfg, run_dir, trainer, files, callbacks, resume_command) -> dict:
    seat = _seat(cfg, run_dir, trainer, files, callbacks)
    stop = StopOnSignal()
    resumed = seat.resumed
    ts, progress = train_loop(
        trainer, seat.ts, seat.key_eval, resumed.epoch if resumed else 0, cfg.train.num_epochs,
        [stop, *seat.callbacks], seat.wall_start,
        start_phase=resumed.phase if resumed else 0, phase_metrics=resumed.phase_metrics if resumed else (),
    )
    _stop_if_signalled(stop, progress, seat.checkpointing.last_saved, run_dir, resume_command)
    log.info("done: %d epochs", cfg.train.num_epochs)
    # the run had already finished: report its last logged epoch
    return progress.metrics if progress is not None else rundir.last_csv_row(run_dir / "metrics.csv")


def _stop_if_signalled(stop: StopOnSignal, progress, saved, run_dir, resume_command) -> None:
    if stop.signum is not None and not finished(progress):
        signum = stop.signum
        log.warning(
            "stopped on %s; %s; resume with: %s", signal.Signals(signum).name,
            f"checkpoint {saved.name} saved" if saved else "no new checkpoint", resume_command,
        )
        if signum == signal.SIGINT:
            raise Interrupted(run_dir, saved, resume_command)
        stop.forward()  # default action: the process ends; submitit: requeue
        raise SystemExit(128 + signum)  # a handler that returned: still stop here


def _where(resumed) -> str | None:
    return checkpoint_name(resumed.epoch, resumed.phase) if resumed else None


def _run_seeds(cfg, seed_cfgs, run_dir, trainer, files, callbacks, resume_command) -> dict:
    """`train.num_seeds` > 1: set up each seed's run as `_run_one` would, resume them all
    from the newest checkpoint every seed has, and loop over the stacked state."""
    rundir.check_same_config(cfg, run_dir)
    (run_dir / "config.yaml").write_text(config_yaml(cfg) if files is None else files.get("config.yaml", ""))
    seed_files = [None if files is None else {**files, "config.yaml": config_yaml(c)} for c in seed_cfgs]

    def seats(newest=None):
        return [_seat(c, seed_dir(run_dir, c.seed), trainer, f, callbacks, newest, f"seed {c.seed}: ")
                for c, f in zip(seed_cfgs, seed_files)]

    all_seats = seats()
    points = {_where(s.resumed) for s in all_seats}
    if len(points) > 1:  # a stop between two seeds' saves: go back to the newest point all of them have
        common = None if None in points else min(points)
        for s in all_seats:
            for cb in s.callbacks:
                cb.close()
        log.warning("the seeds' newest checkpoints differ (%s); resuming every seed from %s",
                    ", ".join(sorted(p or "none" for p in points)), common or "the start")
        all_seats = seats(common or "")
        if len({_where(s.resumed) for s in all_seats}) > 1:
            raise CheckpointError(f"the seeds of {run_dir} have no checkpoint in common; use a new directory")
    first = all_seats[0]
    resumed = first.resumed
    ts = stack([s.ts for s in all_seats])
    for s in all_seats:
        s.ts = None  # the stacked copy is the state now
    batch = SeedBatch(trainer, len(all_seats))
    stop = StopOnSignal()
    ts, progress = train_loop(
        batch, ts, jnp.stack([s.key_eval for s in all_seats]), resumed.epoch if resumed else 0,
        cfg.train.num_epochs, [stop, PerSeed([s.callbacks for s in all_seats])],
        min(s.wall_start for s in all_seats),
        start_phase=resumed.phase if resumed else 0,
        phase_metrics=_stack_phase_metrics([s.resumed.phase_metrics for s in all_seats]) if resumed else (),
    )
    _stop_if_signalled(stop, progress, first.checkpointing.last_saved, run_dir, resume_command)
    log.info("done: %d epochs of %d seeds", cfg.train.num_epochs, len(all_seats))
    if progress is not None and progress.metrics:
        return seed_progress(progress, 0).metrics
    return rundir.last_csv_row(first.run_dir / "metrics.csv")


def _stack_phase_metrics(per_seed: list) -> list[dict]:
    """Phase metrics of a paused epoch, per seed, as the batched loop records them."""
    return [{k: np.array([phases[p][k] for phases in per_seed]) for k in per_seed[0][p]}
            for p in range(len(per_seed[0]))]


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


def _start_or_resume(cfg: Config, run_dir: pathlib.Path, trainer: Trainer, checkpointer: Checkpointer, ts,
                     newest: str | None = None):
    """(state, the Restored checkpoint or None, TensorBoard purge step): the newest intact
    checkpoint (none newer than `newest`; "" for none at all) when there is one, else a
    fresh prefilled state."""
    restored = checkpointer.restore_latest(ts, newest) if newest != "" else None
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
    return ts, restored, _last_epoch_step(cfg, restored) + 1


def _last_epoch_step(cfg: Config, restored) -> int:
    """TensorBoard's step (env steps; SGD steps offline) at the end of the last whole epoch in
    `restored` (a paused checkpoint's counters include the phases of the cut epoch)."""
    if cfg.offline:
        return int(restored.state.sgd_steps) - restored.phase * cfg.sgd_steps_per_training_step
    return restored.env_steps - restored.phase * cfg.train.env_steps_per_training_step


def load_params(run_dir: str | pathlib.Path, trainer: Trainer) -> dict:
    """Read params.msgpack back into the trainer's parameter structure. A file that cannot
    be read, or holds another network's parameters (depth, width), raises
    `crl.params_file.ParamsError`: one line naming the file (and the differing shapes)."""
    template = jax.eval_shape(trainer.init_params, jax.random.PRNGKey(0))
    return read_params(pathlib.Path(run_dir) / "params.msgpack", template)
