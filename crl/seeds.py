"""Several seeds of one configuration in one compiled program (`train.num_seeds`).

    batch = SeedBatch(trainer, num_seeds)     # the trainer's phases, vmapped over seeds
    ts = stack([ts_0, ts_1, ...])             # a leading seed axis on every state leaf
    ts, metrics, finite = batch.train_phase(ts)

Seed i of a batched run is the run `seed + i` would be on its own: each seed's state is
initialised, prefilled (or restored) by the single-seed trainer exactly as that run does
it, and only then stacked; the update phases, the epoch counter and the evaluation run as
`jax.vmap` of the single-seed programs. What differs is how XLA computes a batched
program (batched matrix products may round differently); tests/test_seeds.py measures it.

`PerSeed` hands each seed's own callbacks (metrics files, checkpoints, params, videos)
that seed's slice of every epoch, so each seed writes a complete run directory of its own.
Sharding: the env axis is split over devices as in a single run; the seed axis is not
split (every device holds its env shard of every seed).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from crl.loop import Callback, Pause, Progress


def stack(states: Sequence):
    """One pytree with a leading seed axis from per-seed pytrees of equal structure."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def take(tree, i: int):
    """Seed i's pytree (a copy on the device)."""
    return jax.tree.map(lambda x: x[i], tree)


class SeedBatch:
    """The loop's view of a Trainer run for `num_seeds` seeds at once (crl/loop.py calls
    `train_phase`, `end_epoch`, `eval_key` and `evaluate`; states carry a seed axis)."""

    def __init__(self, trainer, num_seeds: int):
        self.trainer = trainer
        self.cfg = trainer.cfg
        self.num_seeds = num_seeds

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
    def train_phase(self, ts):
        return jax.vmap(self.trainer.train_phase)(ts)

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
    def end_epoch(self, ts):
        return jax.vmap(self.trainer.end_epoch)(ts)

    def eval_key(self, keys, epoch: int):
        return jax.vmap(self.trainer.eval_key, (0, None))(keys, epoch)

    def learner_actor_params(self, ts):
        return self.trainer.learner_actor_params(ts)

    @functools.partial(jax.jit, static_argnums=0)
    def evaluate(self, actor_params, keys, learner_actor_params=None):
        return jax.vmap(self.trainer.evaluate)(actor_params, keys, learner_actor_params)


def _item(value, i: int):
    """Seed i's entry of a metrics value (arrays carry a seed axis; scalars are shared)."""
    value = np.asarray(value)
    return (value[i] if value.ndim else value).item()


class SeedProgress(Progress):
    """A seed's Progress; its state is sliced from the batched state only when a callback
    reads it (a checkpoint, the final params), so an epoch copies no buffer otherwise."""

    _batched = None
    _index = 0
    _state = None

    @property
    def state(self):
        if self._state is None and self._batched is not None:
            self._state = take(self._batched, self._index)
        return self._state

    @state.setter
    def state(self, value):
        self._state = value


def seed_progress(progress: Progress, i: int) -> SeedProgress:
    out = SeedProgress(
        epoch=progress.epoch, num_epochs=progress.num_epochs, state=None,
        metrics={k: _item(v, i) for k, v in progress.metrics.items()},
        params_finite=bool(_item(progress.params_finite, i)), stop_requested=progress.stop_requested,
    )
    out._batched, out._index = progress.state, i
    return out


class PerSeed(Callback):
    """Fans the batched run's events out to each seed's own callbacks, seed by seed."""

    def __init__(self, seed_callbacks: Sequence[Sequence[Callback]]):
        self.seed_callbacks = [list(cbs) for cbs in seed_callbacks]

    @property
    def stop_requested(self) -> bool:
        return any(cb.stop_requested for cbs in self.seed_callbacks for cb in cbs)

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        single = getattr(trainer, "trainer", trainer)  # each seed's callbacks see the one-seed trainer
        for cbs in self.seed_callbacks:
            for cb in cbs:
                cb.on_start(single, start_epoch, num_epochs)

    def on_epoch(self, progress: Progress) -> None:
        for i, cbs in enumerate(self.seed_callbacks):
            mine = seed_progress(progress, i)
            for cb in cbs:
                cb.on_epoch(mine)

    def on_pause(self, pause: Pause) -> None:
        for i, cbs in enumerate(self.seed_callbacks):
            mine = dataclasses.replace(
                pause, state=take(pause.state, i),
                phase_metrics=[{k: _item(v, i) for k, v in m.items()} for m in pause.phase_metrics],
            )
            for cb in cbs:
                cb.on_pause(mine)

    def on_end(self, state, progress: Progress | None) -> None:
        for i, cbs in enumerate(self.seed_callbacks):
            mine = take(state, i)
            seed_prog = seed_progress(progress, i) if progress is not None else None
            for cb in cbs:
                cb.on_end(mine, seed_prog)

    def close(self) -> None:
        errors = []
        for cbs in self.seed_callbacks:
            for cb in cbs:
                try:
                    cb.close()
                except Exception as err:  # close every seed's files before reporting
                    errors.append(err)
        if errors:
            raise errors[0]
