"""Data parallelism over all local devices with `jax.sharding`.

One mesh axis, "data". Envs (and so the env states, the buffer's env axis and each SGD
batch) are split over it; parameters, optimiser states and counters are replicated.
XLA's SPMD partitioner then inserts the collectives: a loss that is a mean over a
sharded batch gives gradients averaged over devices. With one device every constraint
is a no-op, so the same program runs on one device or many.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def data_mesh() -> Mesh:
    return Mesh(np.array(jax.local_devices()), (AXIS,))


def _field(path) -> str:
    first = path[0]
    return getattr(first, "name", getattr(first, "key", str(first)))


def state_shardings(state, mesh: Mesh):
    """NamedSharding per leaf of a TrainState (abstract or concrete)."""

    def leaf(path, x):
        field = _field(path)
        ndim = len(x.shape)
        if field == "buffer" and ndim >= 2:  # (capacity, num_envs, ...)
            return NamedSharding(mesh, P(None, AXIS))
        if field in ("env_state", "episode_ids") and ndim >= 1:  # (num_envs, ...)
            return NamedSharding(mesh, P(AXIS))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(leaf, state)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis of every array over the devices."""
    return NamedSharding(mesh, P(AXIS))


def constrain(tree, shardings):
    return jax.lax.with_sharding_constraint(tree, shardings)
