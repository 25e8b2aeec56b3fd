"""The memory a run needs, before it runs.

    plan = memory_plan(trainer)       # compiles, never allocates the training state

Everything comes from the real programs of the run: the training state's shapes from
`jax.eval_shape(trainer.init)` (nothing is allocated, so a 6 GB buffer costs nothing to
plan), and the memory of each compiled program from XLA's own analysis of it
(`Compiled.memory_analysis()`), lowered from those shapes with the run's shardings. That
works on any backend: compiled for the CPU, the same program gives the numbers a GPU run
of it would need, up to the backends' different fusion and layout choices (measured on a
GPU by experiments/gpu_check.sh where one is lent).

A compiled program holds at once its arguments, its outputs that do not reuse a donated
argument (`alias`), and its temporaries, which XLA allocates as one block. So a program's
footprint is `argument + output - alias + temp` bytes per device, and the run's peak is
the largest of:

  prefill, update phase   the program's footprint (the state is its donated argument)
  evaluation              the state, resident, plus the evaluation's footprint beyond its
                          argument (the actor's parameters are part of the state)

XLA's own `peak_memory_in_bytes` (its heap simulation of the program, which can be lower
than the footprint) is recorded beside it. Checkpoints copy the state to the host: host
memory, not device memory (a run keeps one host copy of its state between saves), and
take `checkpoint.keep` x the state's bytes on disk (`checkpoint_sizes`).
"""

from __future__ import annotations

import jax
import numpy as np

from crl.config import ConfigError
from crl.networks import param_count

GiB = 2**30


def tree_bytes(tree) -> int:
    """Bytes of every array (or abstract array) in a pytree."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))



def checkpoint_sizes(cfg, state_bytes: int, buffer_bytes: int) -> dict:
    """Disk the run's checkpoints take (crl/checkpoint.py), from one seed's state bytes: a
    checkpoint holds the state (without the replay buffer where `checkpoint.include_buffer`
    is false); a run keeps `checkpoint.keep` of them per seed, and one more exists while a
    save is written, before rotation removes the oldest. orbax's files add well under 1 %
    (docs/benchmarks.md)."""
    one = state_bytes - (0 if cfg.checkpoint.include_buffer else buffer_bytes)
    copies = cfg.train.num_seeds * cfg.checkpoint.keep
    return {"checkpoint_bytes": one, "checkpoints_bytes": copies * one,
            "checkpoints_peak_bytes": (copies + cfg.train.num_seeds) * one}


def size_text(n: int) -> str:
    """Bytes for a reader: GiB from 1 GiB on, MiB below."""
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"


def describe_checkpoints(cfg, sizes: dict) -> str:
    """The run's checkpoints in words (its start line in train.log)."""
    seeds = f"{cfg.train.num_seeds} seeds x " if cfg.train.num_seeds > 1 else ""
    return (f"checkpoints take {size_text(sizes['checkpoints_bytes'])} on disk ({seeds}checkpoint.keep="
            f"{cfg.checkpoint.keep} x {size_text(sizes['checkpoint_bytes'])}, replay buffer "
            f"{'included' if cfg.checkpoint.include_buffer else 'not included'}; "
            f"{size_text(sizes['checkpoints_peak_bytes'])} while a save is written)")


def abstract_state(trainer):
    """The training state's shapes, dtypes and shardings, with nothing allocated."""
    shapes = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes,
                        trainer.state_shardings())


def per_device_bytes(abstract) -> int:
    """Bytes of a sharded abstract pytree on one device (a split axis counts its shard)."""
    total = 0
    for x in jax.tree.leaves(abstract):
        shape = x.sharding.shard_shape(x.shape) if getattr(x, "sharding", None) is not None else x.shape
        total += int(np.prod(shape)) * np.dtype(x.dtype).itemsize
    return total


def _stats(compiled) -> dict:
    m = compiled.memory_analysis()
    out = {name: int(getattr(m, f"{name}_size_in_bytes", 0) or 0) for name in ("argument", "output", "alias", "temp")}
    out["xla_peak"] = int(getattr(m, "peak_memory_in_bytes", 0) or 0)
    out["footprint"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    return out


def state_sizes(trainer, abstract=None) -> dict:
    """Sizes that need no compilation: parameter counts and the state's bytes (in all and
    per device), the replay buffer's and the learner's (parameters, optimiser states,
    targets) among them, and the disk the run's checkpoints take (`checkpoint_sizes`)."""
    abstract = abstract if abstract is not None else abstract_state(trainer)
    params = jax.eval_shape(trainer.params, abstract)
    actor = param_count(abstract.actor_params)
    return {
        "actor_params": actor,
        "critic_params": param_count(params) - actor,
        "learner_bytes": tree_bytes(abstract.learner),
        "buffer_bytes": tree_bytes(abstract.buffer),
        "state_bytes": tree_bytes(abstract),
        "state_bytes_per_device": per_device_bytes(abstract),
        **checkpoint_sizes(trainer.cfg, tree_bytes(abstract), tree_bytes(abstract.buffer)),
    }


def memory_plan(trainer) -> dict:
    """The run's memory per device (bytes), from its compiled programs; see the module doc.
    Compiles the prefill, the update phase and the evaluation (the update phase is the
    program the run spends its time in: what a persistent compilation cache then reuses)."""
    abstract = abstract_state(trainer)
    out = state_sizes(trainer, abstract)
    cls = type(trainer)  # jitted methods take the trainer as their static first argument
    train = _stats(cls.train_phase.lower(trainer, abstract).compile())
    prefill = _stats(cls.prefill.lower(trainer, abstract).compile())
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    evaluate = _stats(cls.evaluate.lower(trainer, abstract.actor_params, key,
                                         trainer.learner_actor_params(abstract)).compile())
    eval_total = out["state_bytes_per_device"] + evaluate["footprint"] - evaluate["argument"]
    out.update({
        **{f"update_{k}": v for k, v in train.items()},
        "prefill_footprint": prefill["footprint"],
        "evaluate_footprint": eval_total,
        "peak_bytes": max(train["footprint"], prefill["footprint"], eval_total),
        "devices": len(trainer.mesh.devices.flat),
    })
    return out


def device_memory() -> int | None:
    """Bytes one local device can hold, where the backend reports it (GPUs, TPUs); None on
    the CPU."""
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # a backend without memory stats
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def check_fits(trainer, limit: int | None = None, seeds: int = 1) -> None:
    """Before anything compiles: refuse, in one line, a run whose training state alone (of
    each of its `seeds`) is larger than one device's memory (where the backend reports
    it). Raises ConfigError."""
    limit = device_memory() if limit is None else limit
    if limit is None:
        return
    sizes = state_sizes(trainer)
    need = seeds * sizes["state_bytes_per_device"]
    if need > limit:
        t = trainer.cfg.train
        of_seeds = f" for {seeds} seeds (train.num_seeds)" if seeds > 1 else ""
        raise ConfigError(
            f"train.buffer_size: the training state needs {need / GiB:.2f} GiB per device{of_seeds} "
            f"(replay buffer {seeds * sizes['buffer_bytes'] / GiB:.2f} GiB: buffer_size={t.buffer_size} x "
            f"num_envs={t.num_envs}), more than the device's {limit / GiB:.2f} GiB; lower train.buffer_size, "
            "train.num_envs or train.num_seeds (crl-train ... --plan prints the whole plan)"
        )
