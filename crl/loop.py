"""The training loop: epochs of the compiled trainer, each reported to callbacks.

    ts = train_loop(trainer, ts, key_eval, start_epoch, num_epochs, callbacks, wall_start)

One epoch is `Config.training_steps_per_epoch` update phases (`trainer.train_phase`, one
compiled program each) followed by `trainer.evaluate`; the loop then builds the epoch's
metrics row and hands `Progress(epoch, state, metrics)` to each callback in order, like
the `progress_fn` of Brax's trainers. Everything with a side effect (TensorBoard and CSV,
the progress bar, checkpoints, the stop signal, videos, the final parameters) is a
callback; the loop itself only trains, evaluates and counts.

A stop request (a callback's `stop_requested`, e.g. a signal) is honoured after the
current update phase: inside an epoch the loop hands `Pause(epoch, phase, state,
phase_metrics)` to each callback's `on_pause` (the checkpointer saves it) and ends; a
resume passes `start_phase` and those phase metrics back, and the epoch's row comes out
exactly as if it had never been cut.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax
import numpy as np


@dataclasses.dataclass
class Progress:
    """What a callback sees after an epoch."""

    epoch: int  # epochs completed so far (1-based)
    num_epochs: int
    state: Any  # the TrainState after this epoch
    metrics: dict  # the row logged for this epoch: counters, eval/*, train/*
    params_finite: bool  # every actor/critic parameter and log alpha is finite (per seed in a batched run)
    stop_requested: bool  # a callback asked to stop after this epoch (e.g. a signal)

    @property
    def done(self) -> bool:
        return self.epoch >= self.num_epochs


@dataclasses.dataclass
class Pause:
    """What a callback sees when a stop request ends the loop inside an epoch."""

    epoch: int  # whole epochs completed
    phase: int  # update phases of epoch + 1 completed (>= 1)
    state: Any
    phase_metrics: list  # one dict per completed phase


class Callback:
    """Base class: override what you need. Callbacks run in list order after every epoch."""

    stop_requested: bool = False  # set to True to end the loop after the current epoch

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        """Before the first epoch of this process (`start_epoch` > 0 on a resume)."""

    def on_epoch(self, progress: Progress) -> None:
        pass

    def on_pause(self, pause: Pause) -> None:
        """A stop request ended the loop after `pause.phase` update phases of an epoch."""

    def on_end(self, state, progress: Progress | None) -> None:
        """After the loop ended without an exception: `state` is the final TrainState;
        `progress` the last epoch's (None when no epoch ran: the run had already finished;
        `progress.done` is False when a stop request ended it early, also inside an epoch)."""

    def close(self) -> None:
        """Always called, also when the loop ends with an exception."""


def _host(x):
    """A Python number for a scalar; an array as it is (a batched run's per-seed values)."""
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x


def device_memory_row() -> dict:
    """`device_peak_gib`: the most memory any local device has held so far in this process,
    where the backend reports it (GPUs, TPUs: the number crl-train --plan predicts); {} on
    the CPU."""
    peaks = []
    for device in jax.local_devices():
        try:
            stats = device.memory_stats()
        except Exception:  # a backend without memory stats
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return {"device_peak_gib": max(peaks) / 2**30} if peaks else {}


def epoch_row(trainer, epoch: int, ts, train_metrics: dict, eval_metrics: dict, epoch_time: float,
              wall_time: float) -> dict:
    """The metrics row of one epoch: counters, eval/*, train/* and throughput (env and SGD
    steps per second of the training program alone: evaluation and callbacks excluded; per
    seed in a batched run, whose other values are arrays over its seeds)."""
    cfg = trainer.cfg
    phases = cfg.training_steps_per_epoch
    return {
        "epoch": epoch,
        "env_steps": _host(ts.env_steps),
        "sgd_steps": _host(ts.sgd_steps),
        "wall_time": wall_time,
        **{f"eval/{k}": _host(v) for k, v in eval_metrics.items()},
        **{f"train/{k}": _host(v) for k, v in train_metrics.items()},
        "train/env_steps_per_second": phases * cfg.env_steps_per_phase / epoch_time,
        "train/sgd_steps_per_second": phases * cfg.sgd_steps_per_training_step / epoch_time,
        **device_memory_row(),
    }


def _mean_reported(values: np.ndarray) -> float:
    reported = values[~np.isnan(values)]
    return float(np.mean(reported)) if reported.size else float("nan")


def _mean_over_phases(values: np.ndarray):
    # per seed (column) of a batched run, each as the one-seed run computes it
    return _mean_reported(values) if values.ndim == 1 else np.array([_mean_reported(c) for c in values.T])


def epoch_metrics(phase_metrics: Sequence[dict]) -> dict:
    """An epoch's train metrics from its phases': the mean of each (in float64, on the host,
    so a resumed epoch gives the same numbers) over the phases that report it (NaN: a phase
    without that step, e.g. TD3's delayed actor), episodes_finished summed."""
    out = {k: _mean_over_phases(np.asarray([m[k] for m in phase_metrics], np.float64)) for k in phase_metrics[0]}
    if "episodes_finished" in out:
        out["episodes_finished"] *= len(phase_metrics)
    return out


def train_loop(
    trainer,
    ts,
    key_eval: jax.Array,
    start_epoch: int,
    num_epochs: int,
    callbacks: Sequence[Callback],
    wall_start: float,
    start_phase: int = 0,
    phase_metrics: Sequence[dict] = (),
):
    """Run epochs start_epoch+1 .. num_epochs; returns (state, last Progress or None).

    `wall_start` is the perf_counter value that wall_time counts from (a resumed run
    passes its earlier wall time subtracted, so wall_time continues). `start_phase` and
    `phase_metrics`: the update phases of epoch start_epoch+1 already done before a pause."""
    progress = None
    phases = trainer.cfg.training_steps_per_epoch
    try:
        for cb in callbacks:
            cb.on_start(trainer, start_epoch, num_epochs)
        for epoch in range(start_epoch, num_epochs):
            epoch_start = time.perf_counter()
            done = list(phase_metrics) if epoch == start_epoch else []
            params_finite = True
            for phase in range(start_phase if epoch == start_epoch else 0, phases):
                ts, metrics, finite = trainer.train_phase(ts)
                metrics, finite = jax.device_get((metrics, finite))
                done.append({k: _host(np.asarray(v, np.float64)) for k, v in metrics.items()})
                params_finite = _host(finite)
                if phase + 1 < phases and any(cb.stop_requested for cb in callbacks):
                    pause = Pause(epoch=epoch, phase=phase + 1, state=ts, phase_metrics=done)
                    for cb in callbacks:
                        cb.on_pause(pause)
                    progress = progress or Progress(
                        epoch=epoch, num_epochs=num_epochs, state=ts, metrics={}, params_finite=params_finite,
                        stop_requested=True,
                    )
                    for cb in callbacks:
                        cb.on_end(ts, progress)
                    return ts, progress
            ts = trainer.end_epoch(ts)
            epoch_time = time.perf_counter() - epoch_start
            eval_metrics = jax.device_get(trainer.evaluate(ts.actor_params, trainer.eval_key(key_eval, epoch),
                                                           trainer.learner_actor_params(ts)))
            row = epoch_row(trainer, epoch + 1, ts, epoch_metrics(done), eval_metrics, epoch_time,
                            time.perf_counter() - wall_start)
            progress = Progress(
                epoch=epoch + 1, num_epochs=num_epochs, state=ts, metrics=row, params_finite=params_finite,
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
