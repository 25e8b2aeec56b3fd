"""The library's own training-loop callbacks (see crl/loop.py): metrics files, the
non-finite guard, checkpoints, the stop signal and the final parameters.

Applications add theirs (a progress bar, videos, Weights & Biases) in crl/apps/callbacks.py.
Order matters and is the order of the list: log the epoch first, then refuse a non-finite
state (so the bad epoch is visible but never checkpointed), then checkpoint.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import sys

import jax
import numpy as np
from flax import serialization

from crl.checkpoint import Checkpointer
from crl.logger import MetricsLogger
from crl.loop import Callback, Pause, Progress

log = logging.getLogger(__name__)
# A scheduler's stop signals and Ctrl-C: each stops the run at the next safe point (after
# the running update phase) with a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
EPOCH_LOG = logging.getLogger("crl.epochs")  # train.log only (crl.run attaches it), not the console
EPOCH_LOG.propagate = False


class NonFiniteError(RuntimeError):
    """Training produced NaN or inf; the message names the epoch, env step and metric."""


class MetricsFiles(Callback):
    """TensorBoard events and metrics.csv, one row per epoch (crl/logger.py); TensorBoard's
    step is the row's `step_key` counter (env steps; SGD steps offline)."""

    def __init__(self, run_dir: pathlib.Path, tensorboard: bool, csv: bool, purge_step: int | None,
                 step_key: str = "env_steps"):
        self.logger = MetricsLogger(run_dir, tensorboard, csv, purge_step=purge_step)
        self.step_key = step_key

    def on_epoch(self, progress: Progress) -> None:
        self.logger.log(progress.metrics[self.step_key], progress.metrics)

    def close(self) -> None:
        self.logger.close()


class NonFiniteGuard(Callback):
    """Stops the run, before it is checkpointed, at the first NaN/inf metric or parameter."""

    def __init__(self, checkpointer: Checkpointer):
        self.checkpointer = checkpointer

    def on_epoch(self, progress: Progress) -> None:
        bad = next((f"train/{k[len('train/'):]}" for k, v in progress.metrics.items()
                    if k.startswith("train/") and not np.isfinite(v)), None)
        if bad is None and not progress.params_finite:
            bad = "parameters"
        if bad:
            self.checkpointer.finish()  # the previous epoch's save, if still being written, is a good one
            last = self.checkpointer.complete_checkpoints()
            raise NonFiniteError(
                f"non-finite {bad} at epoch {progress.epoch} (env step {progress.metrics['env_steps']}); stopped "
                f"without checkpointing; last good checkpoint: {last[-1] if last else 'none'}"
            )


class Checkpointing(Callback):
    """Saves every `every_epochs` epochs, at the end, and when a stop was requested (also
    inside an epoch: then with the update phases done so far and their metrics).

    A save blocks the loop only while the state is copied to the host; the checkpointer
    writes it in the background (crl/checkpoint.py), and the next save waits for the one in
    progress. The end of the loop (`on_end`: the run's last epoch, or a stop request) waits
    until the last save is complete, so a stop signal is forwarded, and `Interrupted`
    raised, only after it. When the loop ends with an exception, `close` completes the save
    in progress, except on KeyboardInterrupt (a second Ctrl-C: stop at once), where it
    abandons it and the previous checkpoint stands."""

    def __init__(self, checkpointer: Checkpointer, every_epochs: int):
        self.checkpointer = checkpointer
        self.every_epochs = every_epochs

    @property
    def last_saved(self) -> pathlib.Path | None:
        """The newest checkpoint this run completed."""
        return self.checkpointer.last_complete

    def on_epoch(self, progress: Progress) -> None:
        if progress.epoch % self.every_epochs == 0 or progress.done or progress.stop_requested:
            self._save(progress.state, progress.epoch, progress.metrics["env_steps"])

    def on_pause(self, pause: Pause) -> None:
        self._save(pause.state, pause.epoch, int(pause.state.env_steps), pause.phase, pause.phase_metrics)

    def _save(self, state, epoch: int, env_steps: int, phase: int = 0, phase_metrics=()) -> None:
        self.checkpointer.start_save(state, epoch, env_steps, phase, phase_metrics, on_done=_log_saved)

    def on_end(self, state, progress: Progress | None) -> None:
        self.checkpointer.finish()

    def close(self) -> None:
        if not self.checkpointer.saving:
            return
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):  # close() runs in the loop's `finally`
            self.checkpointer.abandon()
            return
        try:
            self.checkpointer.finish()
        except Exception as err:  # the loop's own exception is the one to report
            log.error("the checkpoint in progress failed: %s", err)


def _log_saved(path: pathlib.Path, timings: dict) -> None:
    EPOCH_LOG.info("checkpoint %s saved (the loop waited %.2f s; written in %.1f s)", path.name,
                   timings["blocked_seconds"], timings["save_seconds"])


class EpochLog(Callback):
    """One line per epoch in the run's log (train.log): epoch, env steps, time at goal, speed
    (`prefix` tells a batched run's seeds apart)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix

    def on_epoch(self, progress: Progress) -> None:
        row = progress.metrics
        EPOCH_LOG.info(
            "%sepoch %d/%d: env steps %d, time_at_goal %.2f, success_any %.3f, critic_loss %.4f, %.0f env steps/s",
            self.prefix, progress.epoch, progress.num_epochs, row["env_steps"], row.get("eval/time_at_goal", float("nan")),
            row.get("eval/success_any", float("nan")), row.get("train/critic_loss", float("nan")),
            row.get("train/env_steps_per_second", float("nan")),
        )


class StopOnSignal(Callback):
    """Ctrl-C (SIGINT) or a scheduler's stop signal (SIGTERM, SIGUSR1, SIGUSR2) ends the run
    after the running update phase, once it is checkpointed; then, for a scheduler's signal,
    `forward()` lets the signal do what it would have done (exit, or submitit's requeue).
    A second signal stops at once; the previous checkpoint stands."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they were
                pass

    @property
    def stop_requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now, the last checkpoint stands
            self._restore()
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        log.warning(
            "received %s: stopping after the running update phase with a checkpoint (again to stop at once)",
            signal.Signals(signum).name,
        )

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def close(self) -> None:
        self._restore()

    def forward(self) -> None:
        """Re-deliver the signal to the handlers that were installed before ours."""
        self._restore()
        os.kill(os.getpid(), self.signum)


def finished(progress: Progress | None) -> bool:
    """The run reached its last epoch (now, or before this process: no epoch ran)."""
    return progress is None or progress.done


class SaveParams(Callback):
    """params.msgpack: the final parameters in the agent's layout (`params_of(state)`: the
    actor, and the critics and log alpha of the agents that have them; atomic write), once
    the run has finished (not when a signal stopped it early)."""

    def __init__(self, run_dir: pathlib.Path, params_of):
        self.path = pathlib.Path(run_dir) / "params.msgpack"
        self.params_of = params_of

    def on_end(self, state, progress: Progress | None) -> None:
        if finished(progress):
            tmp = self.path.with_suffix(".msgpack.tmp")
            tmp.write_bytes(serialization.to_bytes(jax.device_get(self.params_of(state))))
            tmp.replace(self.path)
