"""The training loop: epochs of the compiled trainer, each reported to callbacks.

    ts = train_loop(trainer, ts, key_eval, start_epoch, num_epochs, callbacks, wall_start)

One epoch is `trainer.train_epoch` (one compiled program) followed by `trainer.evaluate`;
the loop then builds the epoch's metrics row and hands `Progress(epoch, state, metrics)`
to each callback in order, like the `progress_fn` of Brax's trainers. Everything with a
side effect (TensorBoard and CSV, the progress bar, checkpoints, the stop signal, videos,
the final parameters) is a callback; the loop itself only trains, evaluates and counts.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax


@dataclasses.dataclass
class Progress:
    """What a callback sees after an epoch."""

    epoch: int  # epochs completed so far (1-based)
    num_epochs: int
    state: Any  # the TrainState after this epoch
    metrics: dict  # the row logged for this epoch: counters, eval/*, train/*
    params_finite: bool  # every actor/critic parameter and log alpha is finite
    stop_requested: bool  # a callback asked to stop after this epoch (e.g. a signal)

    @property
    def done(self) -> bool:
        return self.epoch >= self.num_epochs


class Callback:
    """Base class: override what you need. Callbacks run in list order after every epoch."""

    stop_requested: bool = False  # set to True to end the loop after the current epoch

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        """Before the first epoch of this process (`start_epoch` > 0 on a resume)."""

    def on_epoch(self, progress: Progress) -> None:
        pass

    def on_end(self, state, progress: Progress | None) -> None:
        """After the loop ended without an exception: `state` is the final TrainState;
        `progress` the last epoch's (None when no epoch ran: the run had already finished;
        `progress.done` is False when a stop request ended it early)."""

    def close(self) -> None:
        """Always called, also when the loop ends with an exception."""


def epoch_row(trainer, epoch: int, ts, train_metrics: dict, eval_metrics: dict, epoch_time: float,
              wall_time: float) -> dict:
    """The metrics row of one epoch: counters, eval/*, train/* and throughput (env and SGD
    steps per second of the training program alone: evaluation and callbacks excluded)."""
    cfg = trainer.cfg
    phases = cfg.training_steps_per_epoch
    return {
        "epoch": epoch,
        "env_steps": int(ts.env_steps),
        "sgd_steps": int(ts.sgd_steps),
        "wall_time": wall_time,
        **{f"eval/{k}": float(v) for k, v in eval_metrics.items()},
        **{f"train/{k}": float(v) for k, v in train_metrics.items()},
        "train/env_steps_per_second": phases * cfg.train.env_steps_per_training_step / epoch_time,
        "train/sgd_steps_per_second": phases * cfg.sgd_steps_per_training_step / epoch_time,
    }


def train_loop(
    trainer,
    ts,
    key_eval: jax.Array,
    start_epoch: int,
    num_epochs: int,
    callbacks: Sequence[Callback],
    wall_start: float,
):
    """Run epochs start_epoch+1 .. num_epochs; returns (state, last Progress or None).

    `wall_start` is the perf_counter value that wall_time counts from (a resumed run
    passes its earlier wall time subtracted, so wall_time continues)."""
    progress = None
    try:
        for cb in callbacks:
            cb.on_start(trainer, start_epoch, num_epochs)
        for epoch in range(start_epoch, num_epochs):
            epoch_start = time.perf_counter()
            ts, train_metrics, params_finite = trainer.train_epoch(ts)
            train_metrics, params_finite = jax.device_get((train_metrics, params_finite))
            epoch_time = time.perf_counter() - epoch_start
            eval_metrics = jax.device_get(trainer.evaluate(ts.actor_params, jax.random.fold_in(key_eval, epoch)))
            row = epoch_row(trainer, epoch + 1, ts, train_metrics, eval_metrics, epoch_time, time.perf_counter() - wall_start)
            progress = Progress(
                epoch=epoch + 1, num_epochs=num_epochs, state=ts, metrics=row, params_finite=bool(params_finite),
                stop_requested=any(cb.stop_requested for cb in callbacks),
            )
            for cb in callbacks:
                cb.on_epoch(progress)
            if progress.stop_requested and not progress.done:
                break
        for cb in callbacks:
            cb.on_end(ts, progress)
    finally:
        for cb in callbacks:
            cb.close()
    return ts, progress
