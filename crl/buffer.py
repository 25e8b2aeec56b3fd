"""Trajectory ring buffer with hindsight future-goal relabelling.

Layout is time-major: `states[row, env]`. Every insert writes one whole unroll of all envs
(`unroll_length` rows) at `insert_row` with `dynamic_update_slice`, so an insert touches
only the rows it writes (inside a jitted, donated state XLA updates the buffer in place);
the capacity is a multiple of the unroll length, so an insert never wraps.

Each row stores the env's episode id; relabelling compares ids, so a goal can never come
from another episode. For a sampled step t with K >= 1 later steps of its own episode in
the buffer, the offset k in 1..K is drawn with P(k) proportional to gamma^k by inverting
the truncated geometric CDF (O(1) given K); K, the steps left in the episode within the
next `window` rows, is found by a binary search over episode ids (`steps_left`).

Two samplers (`train.sampling`):

    uniform  (ours, `sample`) every SGD step draws (row, env) uniformly over all written rows.
    window   (the paper's code, `draw_windows` + `sample_windows`) each update phase draws
             one contiguous window of `episode_length` rows per env, start uniform over the
             filled rows; the phase's batches are drawn without replacement from the
             window's first episode_length - 1 positions of every env, and a goal comes
             from later in the same window and episode (offset 0 only where nothing later
             exists). Only indices are drawn per phase; no relabelled window is stored.

Which goals a batch carries is the agent's choice (`Relabelling`): CRL and GCSL take a
future state for every sample; SAC and TD3 keep the goal the env commanded (stored per
row) and, with HER, replace a fraction of them by a future state. Every batch also
carries the next state and the env's goal-reaching reward for its goal, recomputed from
the next state (`reward_fn`, the env family's `goal_reward`), so a relabelled goal gets
its own reward.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct


SAMPLINGS = ("uniform", "window")
OFFSETS = ("geometric", "uniform")  # P(k) proportional to gamma^k (CRL) | k uniform in 1..K (HER's "future", GCSL)


@dataclasses.dataclass(frozen=True)
class Relabelling:
    """Which goal each sample of a batch carries (a static part of the sampler)."""

    future_fraction: float = 1.0  # share of samples whose goal is a future state of their own episode;
    #                               the rest keep the goal the env commanded when the step was taken
    offsets: str = "geometric"  # the law of the future state's distance k (OFFSETS)


@struct.dataclass
class ReplayBuffer:
    states: jax.Array  # (capacity, num_envs, state_dim)
    actions: jax.Array  # (capacity, num_envs, action_size)
    episode_ids: jax.Array  # (capacity, num_envs) int32; -1 = never written
    goals: jax.Array  # (capacity, num_envs, goal_dim): the goal the env commanded at that step
    insert_row: jax.Array  # int32: the row the next unroll goes to
    size: jax.Array  # int32: rows written so far (saturates at capacity)

    @property
    def capacity(self) -> int:
        return self.states.shape[0]

    @property
    def num_envs(self) -> int:
        return self.states.shape[1]


@struct.dataclass
class Batch:
    state: jax.Array  # (B, state_dim)
    action: jax.Array  # (B, action_size)
    goal: jax.Array  # (B, goal_dim): a future state's goal coordinates, or the commanded goal (`relabelled`)
    offset: jax.Array  # (B,) int32: k, the future goal's distance in steps (0 only in the rare fallback)
    horizon: jax.Array  # (B,) int32: K, steps left in the episode within the buffer (0: no next state)
    episode_id: jax.Array  # (B,) the sampled step's episode id
    goal_episode_id: jax.Array  # (B,) the future goal step's episode id (always equal; kept for tests)
    next_state: jax.Array  # (B, state_dim): the state after the step (valid where horizon > 0)
    reward: jax.Array  # (B,) float32: the env's goal-reaching reward of next_state for `goal`
    relabelled: jax.Array  # (B,) bool: the goal is a future state (else the commanded goal)


def capacity_rows(buffer_size: int, unroll_length: int) -> int:
    """Rows actually allocated: `buffer_size` rounded down to whole unrolls."""
    return (buffer_size // unroll_length) * unroll_length


def init(capacity: int, num_envs: int, state_dim: int, action_size: int, goal_dim: int = 0) -> ReplayBuffer:
    return ReplayBuffer(
        states=jnp.zeros((capacity, num_envs, state_dim), jnp.float32),
        actions=jnp.zeros((capacity, num_envs, action_size), jnp.float32),
        episode_ids=jnp.full((capacity, num_envs), -1, jnp.int32),
        goals=jnp.zeros((capacity, num_envs, goal_dim), jnp.float32),
        insert_row=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(buffer: ReplayBuffer, states: jax.Array, actions: jax.Array, episode_ids: jax.Array,
           goals: jax.Array | None = None) -> ReplayBuffer:
    """Write an unroll of shape (unroll_length, num_envs, ...) at `insert_row` (`goals`: the
    commanded goals, required when the buffer stores goals)."""
    unroll = states.shape[0]
    row = buffer.insert_row
    if goals is None:
        goals = jnp.zeros(states.shape[:2] + buffer.goals.shape[2:], jnp.float32)
    return buffer.replace(
        states=jax.lax.dynamic_update_slice(buffer.states, states.astype(jnp.float32), (row, 0, 0)),
        actions=jax.lax.dynamic_update_slice(buffer.actions, actions.astype(jnp.float32), (row, 0, 0)),
        episode_ids=jax.lax.dynamic_update_slice(buffer.episode_ids, episode_ids.astype(jnp.int32), (row, 0)),
        goals=jax.lax.dynamic_update_slice(buffer.goals, goals.astype(jnp.float32), (row, 0, 0)),
        insert_row=(row + unroll) % buffer.capacity,
        size=jnp.minimum(buffer.size + unroll, buffer.capacity),
    )


def truncated_geometric(key: jax.Array, discount: float, horizon: jax.Array) -> jax.Array:
    """k in 1..horizon with P(k) proportional to discount^k (0 where horizon is 0)."""
    u = jax.random.uniform(key, horizon.shape)
    h = horizon.astype(jnp.float32)
    # CDF(k) = (1 - gamma^k) / (1 - gamma^K)  =>  k = ceil(log(1 - u (1 - gamma^K)) / log gamma)
    tail = 1.0 - u * (1.0 - discount**h)
    k = jnp.ceil(jnp.log(tail) / jnp.log(discount))
    return jnp.clip(k, 1, h).astype(jnp.int32) * (horizon > 0)


def uniform_offset(key: jax.Array, horizon: jax.Array) -> jax.Array:
    """k uniform in 1..horizon (0 where horizon is 0): HER's "future" strategy."""
    u = jax.random.uniform(key, horizon.shape)
    k = 1 + jnp.floor(u * horizon.astype(jnp.float32)).astype(jnp.int32)
    return jnp.clip(k, 1, jnp.maximum(horizon, 1)) * (horizon > 0)


def steps_left(ids: jax.Array, rows: jax.Array, envs: jax.Array, own: jax.Array, newest: jax.Array,
               window: int, limit: jax.Array | None = None) -> jax.Array:
    """K: how many of the next `window` rows (at most `limit`, per sample) continue the
    episode of (row, env), stopping at the first break (an episode boundary, the
    unwritten part, or the oldest data just after the `newest` row).

    Episode ids of an env only grow from the oldest row to the newest, so up to the newest
    row "same id as row" is true for a prefix of the rows ahead and false after it; beyond
    the newest row lie older episodes or unwritten rows (id -1), never the same one. K is
    therefore found by a binary search over min(window, rows up to the newest): about
    log2(window) gathers of one id per sample instead of a window-wide gather.
    """
    cap = ids.shape[0]
    lo = jnp.zeros_like(rows)  # offset known to be in the episode (0: the row itself)
    hi = jnp.minimum(window, (newest - rows) % cap)  # the largest offset it can reach
    if limit is not None:
        hi = jnp.minimum(hi, limit)
    for _ in range(int(window).bit_length()):  # each halves hi - lo; window + 1 candidates
        mid = (lo + hi + 1) // 2
        same = ids[(rows + mid) % cap, envs] == own
        lo = jnp.where(same, mid, lo)
        hi = jnp.where(same, hi, mid - 1)
    return lo.astype(jnp.int32)


def sample(
    buffer: ReplayBuffer,
    key: jax.Array,
    batch_size: int,
    discount: float,
    goal_indices: tuple[int, ...],
    window: int,
    relabelling: Relabelling = Relabelling(),
    reward_fn: Callable | None = None,
) -> Batch:
    """Uniform steps over everything written, each with a relabelled future goal.

    `window` bounds how far ahead the episode end is searched; it should be at least the
    episode length (offsets beyond it have probability < discount^window anyway).
    """
    k_row, k_env, k_offset = jax.random.split(key, 3)
    cap = buffer.capacity
    rows = jax.random.randint(k_row, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    envs = jax.random.randint(k_env, (batch_size,), 0, buffer.num_envs)
    ids = buffer.episode_ids
    own = ids[rows, envs]

    horizon = steps_left(ids, rows, envs, own, (buffer.insert_row - 1) % cap, window)

    # The last step of an episode has no future: use the step before it (same episode),
    # for which exactly one future step exists.
    prev = (rows - 1) % cap
    # (Unwritten rows hold id -1 and the oldest rows another episode, so the id test suffices.)
    use_prev = (horizon == 0) & (ids[prev, envs] == own)
    rows = jnp.where(use_prev, prev, rows)
    horizon = jnp.where(use_prev, 1, horizon)

    return _relabelled(buffer, rows, envs, horizon, k_offset, discount, goal_indices, relabelling, reward_fn)


def _relabelled(buffer: ReplayBuffer, rows, envs, horizon, key, discount: float, goal_indices,
                relabelling: Relabelling, reward_fn: Callable | None) -> Batch:
    """The steps (rows, envs), each with the goal of a step `offset` in 1..horizon later (0 if
    none), or, for a share 1 - future_fraction of them, the goal the env commanded."""
    if relabelling.offsets == "geometric":
        offset = truncated_geometric(key, discount, horizon)
    elif relabelling.offsets == "uniform":
        offset = uniform_offset(key, horizon)
    else:
        raise ValueError(f"offsets: {relabelling.offsets!r} is not allowed; use one of {', '.join(OFFSETS)}")
    idx = jnp.asarray(goal_indices)
    goal_rows = (rows + offset) % buffer.capacity
    goal = buffer.states[goal_rows, envs][:, idx]
    relabelled = jnp.ones(rows.shape, bool)
    if relabelling.future_fraction < 1.0:
        # A key of its own (folded in), so that the future goals above are drawn as without it.
        relabelled = jax.random.uniform(jax.random.fold_in(key, 1), rows.shape) < relabelling.future_fraction
        goal = jnp.where(relabelled[:, None], goal, buffer.goals[rows, envs])
    next_state = buffer.states[(rows + 1) % buffer.capacity, envs]
    reward = jnp.zeros(rows.shape, jnp.float32) if reward_fn is None else reward_fn(next_state[:, idx], goal)
    return Batch(
        state=buffer.states[rows, envs],
        action=buffer.actions[rows, envs],
        goal=goal,
        offset=offset,
        horizon=horizon,
        episode_id=buffer.episode_ids[rows, envs],
        goal_episode_id=buffer.episode_ids[goal_rows, envs],
        next_state=next_state,
        reward=reward.astype(jnp.float32),
        relabelled=relabelled,
    )


# -- the paper's per-phase window sampling ------------------------------------------------


@struct.dataclass
class Windows:
    """One update phase's sample: a window per env and the transitions each batch takes."""

    starts: jax.Array  # (num_envs,) int32: the window's first row, counted from the oldest row
    picks: jax.Array  # (..., batch_size) int32: env x (window - 1) + position in the window


def draw_windows(buffer: ReplayBuffer, key: jax.Array, window: int, num_batches: int, batch_size: int) -> Windows:
    """One window of `window` rows per env, and `num_batches` batches without replacement.

    As the paper's buffer: the start is uniform in [0, size - window) rows after the
    oldest, so a window never holds the newest row; each window gives window - 1
    transitions (its last row only serves as a goal), and the batches are the first
    num_batches x batch_size of a random permutation of all num_envs x (window - 1).
    Needs size > window and num_batches x batch_size <= num_envs x (window - 1).
    """
    k_start, k_perm = jax.random.split(key)
    starts = jax.random.randint(k_start, (buffer.num_envs,), 0, buffer.size - window)
    per_env = window - 1
    order = jax.random.permutation(k_perm, buffer.num_envs * per_env)
    picks = order[: num_batches * batch_size].reshape(num_batches, batch_size)
    return Windows(starts=starts.astype(jnp.int32), picks=picks.astype(jnp.int32))


def sample_windows(
    buffer: ReplayBuffer,
    windows: Windows,
    key: jax.Array,
    discount: float,
    goal_indices: tuple[int, ...],
    window: int,
    relabelling: Relabelling = Relabelling(),
    reward_fn: Callable | None = None,
) -> Batch:
    """The batch `windows.picks` (shape (batch_size,)) names, each with a relabelled goal.

    The goal offset k >= 1 has P(k) proportional to gamma^k over the later steps of the
    same episode inside the window; where no such step exists the offset is 0 (the
    step's own state is its goal), as in the paper's code.
    """
    per_env = window - 1
    envs, position = windows.picks // per_env, windows.picks % per_env
    oldest = (buffer.insert_row - buffer.size) % buffer.capacity
    rows = (oldest + windows.starts[envs] + position) % buffer.capacity
    # K = how many of the window's later rows continue this episode.
    ids = buffer.episode_ids
    horizon = steps_left(ids, rows, envs, ids[rows, envs], (buffer.insert_row - 1) % buffer.capacity, per_env,
                         limit=per_env - position)
    return _relabelled(buffer, rows, envs, horizon, key, discount, goal_indices, relabelling, reward_fn)
