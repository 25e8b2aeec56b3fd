"""Run a whole training: build env and trainer, loop over epochs, evaluate, log, save.

This is the library's front door (usable from a notebook without Hydra):

    from crl.config import from_dict
    from crl.run import run_training
    summary = run_training(from_dict({"env": {"id": "point_u_maze"}}), "runs/try")
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import numpy as np
from flax import serialization

import envs
from crl.config import Config, ConfigError
from crl.logger import MetricsLogger
from crl.networks import param_count
from crl.train import Trainer


def build_envs(cfg: Config):
    """The training env and the evaluation env (its `_eval` variant where configured)."""
    try:
        env = envs.make(cfg.env.id, episode_length=cfg.env.episode_length, **cfg.env.params)
        eval_env = env
        if cfg.env.eval_id:
            eval_env = envs.make(cfg.env.eval_id, episode_length=cfg.env.episode_length, **cfg.env.params)
    except KeyError as err:  # registry/family errors are already one line naming the key
        raise ConfigError(str(err.args[0])) from None
    return env, eval_env


def run_training(cfg: Config, run_dir: str | pathlib.Path, progress: bool | None = None) -> dict:
    """Train, writing TensorBoard events, metrics.csv and params.msgpack into `run_dir`.

    Returns the last epoch's metrics row.
    """
    run_dir = pathlib.Path(run_dir)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    t = cfg.train
    run_dir.mkdir(parents=True, exist_ok=True)

    key = jax.random.PRNGKey(cfg.seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    ts = trainer.init(k_init)
    sizes = {
        "actor_params": param_count(ts.actor_params),
        "critic_params": param_count(ts.critic_params),
        "sgd_steps_per_training_step": t.sgd_steps_per_training_step,
        "training_steps_per_epoch": t.training_steps_per_epoch,
        "env_steps_per_epoch": t.training_steps_per_epoch * t.env_steps_per_training_step,
        "buffer_rows": trainer.capacity,
        "devices": [str(d) for d in jax.devices()],
    }
    (run_dir / "run_info.json").write_text(json.dumps(sizes, indent=2))

    logger = MetricsLogger(run_dir, cfg.logging.tensorboard, cfg.logging.csv)
    show = cfg.logging.progress_bar if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=t.num_epochs, desc=cfg.env.id, unit="epoch", dynamic_ncols=True)

    start = time.perf_counter()
    ts = trainer.prefill(ts)
    row: dict = {}
    try:
        for epoch in range(t.num_epochs):
            epoch_start = time.perf_counter()
            ts, train_metrics = trainer.train_epoch(ts)
            train_metrics = jax.device_get(train_metrics)
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
                "train/sgd_steps_per_second": t.training_steps_per_epoch * t.sgd_steps_per_training_step / epoch_time,
            }
            logger.log(env_steps, row)
            if bar is not None:
                bar.set_postfix(
                    env_steps=env_steps,
                    sps=f"{row['train/env_steps_per_second']:.0f}",
                    time_at_goal=f"{row['eval/time_at_goal']:.1f}",
                )
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        logger.close()

    if cfg.logging.save_params:
        params = {"actor": ts.actor_params, "critic": ts.critic_params, "log_alpha": ts.log_alpha}
        tmp = run_dir / "params.msgpack.tmp"
        tmp.write_bytes(serialization.to_bytes(jax.device_get(params)))
        tmp.replace(run_dir / "params.msgpack")
    return row


def load_params(run_dir: str | pathlib.Path, trainer: Trainer) -> dict:
    """Read params.msgpack back into the trainer's parameter structure."""
    template = trainer.init(jax.random.PRNGKey(0))
    target = {"actor": template.actor_params, "critic": template.critic_params, "log_alpha": np.zeros((), np.float32)}
    data = (pathlib.Path(run_dir) / "params.msgpack").read_bytes()
    return serialization.from_bytes(target, data)
