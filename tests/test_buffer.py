import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import buffer as replay


def fill(buf, unrolls, unroll_len, episode_len, state_fn=None):
    """Insert `unrolls` unrolls; the state is (time index, env index, episode id)."""
    num_envs = buf.num_envs
    t = 0
    for _ in range(unrolls):
        times = jnp.arange(t, t + unroll_len)[:, None] * jnp.ones((1, num_envs))
        envs_ = jnp.ones((unroll_len, 1)) * jnp.arange(num_envs)[None, :]
        # Envs end episodes at different phases so boundaries are not aligned.
        ep = ((times + 7 * envs_) // episode_len).astype(jnp.int32)
        states = jnp.stack([times, envs_, ep.astype(jnp.float32)], axis=-1)
        actions = jnp.zeros((unroll_len, num_envs, 1))
        buf = replay.insert(buf, states, actions, ep)
        t += unroll_len
    return buf


def test_insert_past_capacity_keeps_the_newest():
    buf = replay.init(capacity=20, num_envs=3, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=7, unroll_len=5, episode_len=1000)  # 35 rows into 20
    assert int(buf.size) == 20 and int(buf.insert_row) == 35 % 20
    times = np.sort(np.asarray(buf.states[:, 0, 0]))
    np.testing.assert_array_equal(times, np.arange(15, 35))


def test_insert_writes_only_its_rows():
    buf = replay.init(capacity=10, num_envs=2, state_dim=1, action_size=1)
    buf = replay.insert(buf, jnp.ones((5, 2, 1)), jnp.ones((5, 2, 1)), jnp.zeros((5, 2), jnp.int32))
    assert np.all(np.asarray(buf.states[:5]) == 1) and np.all(np.asarray(buf.states[5:]) == 0)
    assert np.all(np.asarray(buf.episode_ids[5:]) == -1)


def test_capacity_is_whole_unrolls():
    assert replay.capacity_rows(10_000, 62) == 9982


def test_goals_never_cross_an_episode_boundary():
    buf = replay.init(capacity=60, num_envs=4, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=17, unroll_len=6, episode_len=13)  # wrapped; many short episodes
    batch = jax.jit(replay.sample, static_argnums=(2, 3, 4, 5))(
        buf, jax.random.PRNGKey(0), 4096, 0.9, (2,), 13
    )
    # goal = the stored episode id of the goal step (state index 2)
    np.testing.assert_array_equal(np.asarray(batch.goal[:, 0]).astype(int), np.asarray(batch.episode_id))
    np.testing.assert_array_equal(np.asarray(batch.goal_episode_id), np.asarray(batch.episode_id))
    offset = np.asarray(batch.offset)
    horizon = np.asarray(batch.horizon)
    assert np.all(offset >= 1) and np.all(offset <= horizon)
    # The goal is `offset` steps later in time, in the same env.
    state_time = np.asarray(batch.state[:, 0])
    goal_batch_time = np.asarray(
        replay.sample(buf, jax.random.PRNGKey(0), 4096, 0.9, (0,), 13).goal[:, 0]
    )
    np.testing.assert_array_equal(goal_batch_time - state_time, offset)


def test_horizon_stops_at_the_newest_data():
    buf = replay.init(capacity=40, num_envs=1, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=2, unroll_len=5, episode_len=1000)  # one unfinished episode, rows 0..9
    batch = replay.sample(buf, jax.random.PRNGKey(1), 2000, 0.99, (0,), 100)
    t = np.asarray(batch.state[:, 0]).astype(int)
    np.testing.assert_array_equal(np.asarray(batch.horizon), 9 - t)
    assert np.all(t <= 9) and np.all(np.asarray(batch.goal[:, 0]) <= 9)


def test_offsets_follow_the_truncated_geometric_distribution():
    """Pearson chi-square against P(k) = gamma^k / sum_{j<=K} gamma^j, fixed seed."""
    gamma, horizon, n = 0.8, 12, 200_000
    k = np.asarray(replay.truncated_geometric(jax.random.PRNGKey(42), gamma, jnp.full((n,), horizon)))
    assert k.min() >= 1 and k.max() <= horizon
    support = np.arange(1, horizon + 1)
    p = gamma**support / np.sum(gamma**support)
    observed = np.bincount(k, minlength=horizon + 1)[1:]
    chi2 = np.sum((observed - n * p) ** 2 / (n * p))
    # 11 degrees of freedom: the 0.999 quantile is 31.3
    assert chi2 < 31.3, (chi2, observed, n * p)


def test_offsets_in_sampled_batches_follow_the_distribution():
    """End to end through `sample`: the offset histogram given the horizon matches."""
    gamma = 0.7
    buf = replay.init(capacity=400, num_envs=2, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=40, unroll_len=10, episode_len=50)
    batch = replay.sample(buf, jax.random.PRNGKey(3), 100_000, gamma, (2,), 50)
    offset, horizon = np.asarray(batch.offset), np.asarray(batch.horizon)
    sel = horizon >= 20  # effectively untruncated: P(k > 20) ~ 0.0008
    support = np.arange(1, 21)
    p = gamma**support / np.sum(gamma**support)
    observed = np.bincount(offset[sel], minlength=21)[1:21]
    expected = sel.sum() * p
    keep = expected > 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert chi2 < 40, chi2


def test_sample_work_does_not_grow_with_the_window():
    """No batch x window intermediate: the episode end is found by a binary search, so the
    largest array is a small multiple of the batch (gather indices carry a trailing axis of 2)."""
    buf = replay.init(capacity=1200, num_envs=2, state_dim=3, action_size=1)
    window, batch = 1000, 8
    jaxpr = jax.make_jaxpr(lambda b, k: replay.sample(b, k, batch, 0.99, (0,), window))(buf, jax.random.PRNGKey(0))
    biggest = max(int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars)
    assert biggest <= 4 * batch < window


# -- the paper's window sampling --------------------------------------------------------------


def test_window_sampling_stays_inside_its_window_and_episode():
    """One phase: every transition of every env's window exactly once, goals only from later
    in the same window and episode, offset 0 exactly where nothing later exists."""
    cap, num_envs, unroll, episode, window = 60, 4, 6, 13, 10
    buf = replay.init(capacity=cap, num_envs=num_envs, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=17, unroll_len=unroll, episode_len=episode)  # wrapped: times 42..101 stored
    per_env = window - 1
    num_batches, batch = 4, num_envs * per_env // 4
    windows = replay.draw_windows(buf, jax.random.PRNGKey(0), window, num_batches, batch)
    sample = jax.jit(replay.sample_windows, static_argnums=(3, 4, 5))
    oldest, newest = 17 * unroll - cap, 17 * unroll - 1
    start_time = oldest + np.asarray(windows.starts)
    assert np.all(start_time >= oldest) and np.all(start_time + window - 1 <= newest - 1)  # never the newest row

    seen = []
    for b in range(num_batches):
        picks = windows.replace(picks=windows.picks[b])
        key = jax.random.PRNGKey(b)
        out = sample(buf, picks, key, 0.9, (0,), window)  # goal = the goal step's time
        ep_goal = sample(buf, picks, key, 0.9, (2,), window)  # same draw, goal = its episode id
        t = np.asarray(out.state[:, 0]).astype(int)
        env = np.asarray(out.state[:, 1]).astype(int)
        ep = np.asarray(out.state[:, 2]).astype(int)
        offset = np.asarray(out.offset)
        np.testing.assert_array_equal(np.asarray(out.goal[:, 0]).astype(int) - t, offset)
        np.testing.assert_array_equal(np.asarray(ep_goal.goal[:, 0]).astype(int), ep)
        window_end = start_time[env] + window - 1
        episode_end = (ep + 1) * episode - 7 * env - 1  # the episode's last time step (see `fill`)
        later = np.minimum(window_end, episode_end) - t  # steps after t in the window and the episode
        np.testing.assert_array_equal(np.asarray(out.horizon), later)
        assert np.all((offset == 0) == (later == 0)) and np.all(offset <= later)
        assert np.all(t >= start_time[env]) and np.all(t < window_end)  # the window's last row is goal-only
        seen += list(zip(env, t))
    expected = {(e, int(start_time[e]) + i) for e in range(num_envs) for i in range(per_env)}
    assert len(seen) == len(set(seen)) == len(expected) and set(seen) == expected


def test_window_batches_are_without_replacement_and_starts_are_uniform():
    buf = replay.init(capacity=400, num_envs=8, state_dim=3, action_size=1)
    buf = fill(buf, unrolls=20, unroll_len=10, episode_len=1000)  # 200 rows, one episode per env
    draw = jax.jit(replay.draw_windows, static_argnums=(2, 3, 4))
    starts = []
    for seed in range(200):
        w = draw(buf, jax.random.PRNGKey(seed), 50, 7, 40)  # 280 of the 8 x 49 = 392 transitions
        picks = np.asarray(w.picks).ravel()
        assert picks.shape == (280,) and len(set(picks)) == 280 and picks.min() >= 0 and picks.max() < 392
        starts.append(np.asarray(w.starts))
    starts = np.concatenate(starts)
    # start uniform in [0, size - window) = 0..149: every value possible, mean near 74.5
    assert starts.min() == 0 and starts.max() == 149 and abs(starts.mean() - 74.5) < 3


def test_window_sample_work_does_not_grow_with_the_window():
    buf = replay.init(capacity=1200, num_envs=2, state_dim=3, action_size=1)
    window, batch = 1000, 8
    windows = replay.Windows(starts=jnp.zeros((2,), jnp.int32), picks=jnp.arange(batch, dtype=jnp.int32))
    jaxpr = jax.make_jaxpr(lambda b, w, k: replay.sample_windows(b, w, k, 0.99, (0,), window))(
        buf, windows, jax.random.PRNGKey(0)
    )
    biggest = max(int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars)
    assert biggest <= 4 * batch < window  # a binary search, as the uniform sampler


def window_scan_horizon(buf, rows, envs, window):
    """The previous sampler's K: a window-wide gather and a cumulative product (the oracle)."""
    ids = np.asarray(buf.episode_ids)
    cap = ids.shape[0]
    own = ids[rows, envs]
    ahead = (rows[:, None] + 1 + np.arange(window)[None, :]) % cap
    same = ids[ahead, envs[:, None]] == own[:, None]
    return np.cumprod(same, axis=1).sum(axis=1)


def random_fill(buf, unrolls, unroll_len, max_episode, seed):
    """Episodes of random lengths 1..max_episode per env, ids counting up as in training."""
    rng = np.random.default_rng(seed)
    num_envs = buf.num_envs
    ids = np.zeros(num_envs, np.int64)
    left = rng.integers(1, max_episode + 1, num_envs)
    t = 0
    for _ in range(unrolls):
        chunk = np.zeros((unroll_len, num_envs), np.int32)
        for i in range(unroll_len):
            chunk[i] = ids
            left -= 1
            ended = left == 0
            ids = ids + ended
            left = np.where(ended, rng.integers(1, max_episode + 1, num_envs), left)
        times = (t + np.arange(unroll_len))[:, None] * np.ones((1, num_envs))
        states = np.stack([times, chunk.astype(np.float64)], axis=-1)
        buf = replay.insert(buf, jnp.asarray(states), jnp.zeros((unroll_len, num_envs, 1)), jnp.asarray(chunk))
        t += unroll_len
    return buf


@pytest.mark.parametrize("unrolls, max_episode, window", [
    (3, 30, 30),     # partly filled: the unwritten rows end the search
    (9, 30, 30),     # exactly full
    (23, 30, 30),    # wrapped many times; the newest row sits mid-buffer
    (23, 45, 12),    # episodes longer than the window: K is capped at the window
    (17, 2, 30),     # one- and two-step episodes (the use-the-step-before fallback)
    (14, 50, 50),    # episodes near the validated limit (capacity > episode + unroll)
])
def test_binary_search_horizon_equals_the_window_scan(unrolls, max_episode, window):
    """The binary search returns exactly the K of the window-wide scan it replaced, for every
    row of every env, so sampling (same keys, same draws) is unchanged."""
    buf = replay.init(capacity=90, num_envs=5, state_dim=2, action_size=1)
    buf = random_fill(buf, unrolls, 6, max_episode, seed=unrolls + window)
    written = int(buf.size)
    rows, envs = (a.ravel() for a in np.meshgrid(np.arange(written), np.arange(5), indexing="ij"))
    ids = buf.episode_ids
    got = replay.steps_left(ids, jnp.asarray(rows), jnp.asarray(envs), ids[rows, envs],
                            (buf.insert_row - 1) % buf.capacity, window)
    np.testing.assert_array_equal(np.asarray(got), window_scan_horizon(buf, rows, envs, window))
