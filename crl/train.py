"""The trainer as pure functions over one `TrainState` pytree, the same for every agent
(crl.agents: the agent is its networks, losses and update; this module never asks which).

    prefill:        unrolls of random actions (or of the untrained actor) -> buffer
                                                                    (one jitted scan)
    training step:  unroll the agent's acting policy in all envs -> insert into the buffer
    (update phase)  -> `sgd_steps_per_training_step` x (sample + relabel as the agent asks,
                    the agent's update)                             (one lax.scan)
    epoch:          `training_steps_per_epoch` update phases, each one compiled program
                    with the state donated (the buffer is updated in place); Python loops
                    over phases (a stop request is honoured between two) and epochs.

Offline (`train.dataset`, crl/dataset.py) the buffer holds the fixed data from the start
and an update phase is only its SGD steps: the training env is never stepped. Learners
(`train.learner_depths`) are agents of given depths, initialised apart, that take an update
step on every batch the run samples, with the same key, and never act; they live in `TrainState.learner` under
"learners" (absent without them, so the state's layout is unchanged) and are evaluated on
the same episodes as the run's own policy.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from crl import agents
from crl import buffer as replay
from crl import dataset as fixed_data
from crl import sharding
from crl.config import Config
from crl.evaluate import evaluate
from crl.networks import reinit_last_layers
from envs.base import EnvState, GoalEnv
from envs.wrappers import TrainingEnv


@struct.dataclass
class TrainState:
    """The whole state of a run, one pytree (a checkpoint restores it exactly). `learner` is
    the agent's learning state: a dict of Flax `TrainState`s (parameters, optimiser state,
    step; `apply_gradients`), always with "actor", and of target parameters (crl.agents);
    with `train.learner_depths` also "learners": {name: that learner's learning state}."""

    learner: dict
    buffer: replay.ReplayBuffer
    env_state: EnvState
    episode_ids: jax.Array  # (num_envs,) int32: current episode of each env
    key: jax.Array
    env_steps: jax.Array  # int32 counters (enough for 2e9 env steps)
    sgd_steps: jax.Array
    epoch: jax.Array

    @property
    def actor_params(self):
        return self.learner["actor"].params


def _mean_reported(x: jax.Array) -> jax.Array:
    reported = ~jnp.isnan(x)
    return jnp.where(jnp.any(reported), jnp.sum(jnp.where(reported, x, 0.0)) / jnp.maximum(jnp.sum(reported), 1), jnp.nan)


LEARNERS = "learners"  # the key of the extra learners in TrainState.learner


def learner_config(cfg: Config, depth: int) -> Config:
    """The config of a learner of `depth` (actor and critic) beside the run's own agent."""
    network = dataclasses.replace(cfg.network, depth=depth, actor_depth=depth, critic_depth=depth)
    return dataclasses.replace(cfg, network=network)


class Trainer:
    """Holds the static parts of a run (env, modules, optimisers, sizes); methods are pure.

    `dataset`: the fixed data of an offline run (crl.dataset's flat arrays, checked against
    the env); `start_params`: parameters to start from (train.init_from), in init_params'
    layout."""

    def __init__(self, cfg: Config, env: GoalEnv, eval_env: GoalEnv | None = None, dataset: dict | None = None,
                 start_params: dict | None = None):
        self.cfg = cfg
        t = cfg.train
        self.env = env
        self.eval_env = eval_env or env
        self.train_env = TrainingEnv(env, cfg.env.episode_length, reset_mode=t.reset_mode)
        self.state_dim = env.state_dim
        self.goal_indices = tuple(env.goal_indices)
        self.action_size = env.action_size
        self.goal_dim = len(self.goal_indices)
        self.agent = agents.make(cfg, env)
        self.learners = {name: agents.make(learner_config(cfg, depth), env)
                         for name, depth in zip(cfg.learner_names(), t.learner_depths)}
        self.start_params = start_params
        self.mesh = sharding.data_mesh()
        self.fixed_buffer = None
        if dataset is not None:  # offline; without it this trainer can act and evaluate, not train
            self.fixed_buffer = fixed_data.to_buffer(dataset, len(self.mesh.devices.flat), self.goal_dim)
            n = int(dataset["observations"].shape[0])
            self.dataset_info = {"transitions": n, "trajectories": int(dataset["terminals"].sum()),
                                 "columns": self.fixed_buffer.num_envs,
                                 "left_out": n - self.fixed_buffer.capacity * self.fixed_buffer.num_envs,
                                 "sha256": fixed_data.digest(dataset)}
        self.capacity = (self.fixed_buffer.capacity if self.fixed_buffer is not None
                         else replay.capacity_rows(t.buffer_size, t.unroll_length))
        self.buffer_columns = self.fixed_buffer.num_envs if self.fixed_buffer is not None else t.num_envs
        self._state_shardings = None

    def state_shardings(self):
        """Where each TrainState leaf lives: env axis split over devices, the rest replicated."""
        if self._state_shardings is None:
            abstract = jax.eval_shape(self._init_unsharded, jax.random.PRNGKey(0), self.start_params)
            self._state_shardings = sharding.state_shardings(abstract, self.mesh)
        return self._state_shardings

    def _shard(self, ts: TrainState) -> TrainState:
        return sharding.constrain(ts, self.state_shardings())

    # -- state ----------------------------------------------------------------------------

    def init_params(self, key: jax.Array) -> dict:
        """Fresh parameters in params.msgpack's layout (the agent's; "actor" always)."""
        return self.agent.init_params(key)

    def init_learner(self, key: jax.Array, start_params: dict | None = None) -> dict:
        """The TrainState field that learns: the agent's learning state (from `start_params`
        with its last `network.reinit_last_layers` layers drawn afresh, if given), and the
        learners' (each from a key of its own, `learner_init_key`)."""
        params = None
        if start_params is not None:
            params = reinit_last_layers(start_params, self.agent.init_params(key), self.cfg.network.reinit_last_layers)
        learner = self.agent.init_learner(key, params)
        if self.learners:
            learner = {**learner, LEARNERS: {name: a.init_learner(self.learner_init_key(key, i))
                                             for i, (name, a) in enumerate(self.learners.items())}}
        return learner

    def learner_init_key(self, key: jax.Array, index: int) -> jax.Array:
        """The initialisation key of learner `index`: not the run's own, so that a learner of
        the run's depth is an independent network that only does not act."""
        return jax.random.fold_in(key, index + 1)

    def params(self, ts: TrainState) -> dict:
        """What a run produces (params.msgpack), in `init_params`' layout."""
        return self.agent.params(ts.learner)

    def learner_params(self, ts: TrainState) -> dict:
        """{learner name: its parameters in init_params' layout} ({} without learners)."""
        return {name: a.params(ts.learner[LEARNERS][name]) for name, a in self.learners.items()}

    def learner_actor_params(self, ts: TrainState) -> dict | None:
        """The learners' actor parameters, what `evaluate` scores (None without learners)."""
        return {name: ts.learner[LEARNERS][name]["actor"].params for name in self.learners} or None

    def init(self, key: jax.Array) -> TrainState:
        """A fresh state: new (or `start_params`') parameters, a reset env, and an empty
        buffer, or offline the fixed data."""
        if self.cfg.offline and self.fixed_buffer is None:
            raise ValueError("train.dataset is set: give the Trainer its data (crl.run.load_inputs)")
        ts = self._init(key, self.start_params)
        if self.fixed_buffer is not None:
            ts = ts.replace(buffer=jax.device_put(self.fixed_buffer, self.state_shardings().buffer))
        return ts

    @functools.partial(jax.jit, static_argnums=0)
    def _init(self, key: jax.Array, start_params) -> TrainState:
        # Jitted so that every leaf is its own device buffer (donation rejects aliases).
        return self._shard(self._init_unsharded(key, start_params))

    def _init_unsharded(self, key: jax.Array, start_params=None) -> TrainState:
        t = self.cfg.train
        k_learner, k_env, k_state = jax.random.split(key, 3)
        return TrainState(
            learner=self.init_learner(k_learner, start_params),
            buffer=replay.init(self.capacity, self.buffer_columns, self.state_dim, self.action_size, self.goal_dim),
            env_state=self.train_env.reset(k_env, t.num_envs),
            episode_ids=jnp.zeros((t.num_envs,), jnp.int32),
            key=k_state,
            env_steps=jnp.zeros((), jnp.int32),
            sgd_steps=jnp.zeros((), jnp.int32),
            epoch=jnp.zeros((), jnp.int32),
        )

    # -- acting ---------------------------------------------------------------------------

    def policy_sample(self, actor_params, state, goal, key):
        """The agent's acting policy (collection)."""
        return self.agent.explore(actor_params, state, goal, key)

    def policy_deterministic(self, actor_params, state, goal, key=None):
        """The agent's evaluation policy."""
        return self.agent.act(actor_params, state, goal)

    def collect(self, ts: TrainState, random_actions: bool) -> tuple[TrainState, dict]:
        """Unroll all envs for `unroll_length` steps and insert the unroll into the buffer."""
        num_envs = self.cfg.train.num_envs

        def step(carry, key):
            env_state, episode_ids = carry
            obs = env_state.obs
            s, g = obs[:, : self.state_dim], obs[:, self.state_dim :]
            if random_actions:
                action = jax.random.uniform(key, (num_envs, self.action_size), minval=-1.0, maxval=1.0)
            else:
                action = self.policy_sample(ts.actor_params, s, g, key)
            nxt = self.train_env.step(env_state, action)
            record = (s, action, episode_ids, g)
            stats = {"success": nxt.metrics["success"], "dist": nxt.metrics["dist"], "done": nxt.done}
            # A finished episode's next step belongs to a new episode of that env.
            return (nxt, episode_ids + (nxt.done > 0.5).astype(jnp.int32)), (record, stats)

        key, k_unroll = jax.random.split(ts.key)
        keys = jax.random.split(k_unroll, self.cfg.train.unroll_length)
        (env_state, episode_ids), ((s, a, ids, g), stats) = jax.lax.scan(step, (ts.env_state, ts.episode_ids), keys)
        ts = ts.replace(
            buffer=replay.insert(ts.buffer, s, a, ids, g),
            env_state=env_state,
            episode_ids=episode_ids,
            key=key,
            env_steps=ts.env_steps + self.cfg.train.env_steps_per_training_step,
        )
        metrics = {
            "collect_success": jnp.mean(stats["success"]),
            "collect_dist": jnp.mean(stats["dist"]),
            "episodes_finished": jnp.sum(stats["done"]),
        }
        return ts, metrics

    # -- learning -------------------------------------------------------------------------

    def sgd_step(self, ts: TrainState, key: jax.Array, windows: replay.Windows | None = None) -> tuple[TrainState, dict]:
        """Sample a batch (uniformly, or the batch `windows` names) with the goals the agent
        asks for and their rewards, then take the agent's update step."""
        t = self.cfg.train
        k_sample, k_update = jax.random.split(key)
        goals = dict(relabelling=self.agent.relabelling, reward_fn=self.env.goal_reward)
        if windows is None:
            batch = replay.sample(
                ts.buffer, k_sample, t.batch_size, t.discount, self.goal_indices, self.cfg.env.episode_length, **goals
            )
        else:
            batch = replay.sample_windows(
                ts.buffer, windows, k_sample, t.discount, self.goal_indices, self.cfg.env.episode_length, **goals
            )
        batch = sharding.constrain(batch, sharding.batch_sharding(self.mesh))
        ts, metrics = self.update(ts, batch, k_update)
        return ts, {**metrics, "goal_offset": jnp.mean(batch.offset.astype(jnp.float32))}

    def update(self, ts: TrainState, batch: replay.Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """The agent's SGD step on one batch, then each learner's on the same batch and key
        (its metrics prefixed with its name)."""
        own = {k: v for k, v in ts.learner.items() if k != LEARNERS}
        learner, metrics = self.agent.update(own, batch, key)
        if self.learners:
            metrics, updated = dict(metrics), {}
            for name, agent in self.learners.items():
                updated[name], theirs = agent.update(ts.learner[LEARNERS][name], batch, key)
                metrics.update({f"{name}/{k}": v for k, v in theirs.items()})
            learner = {**learner, LEARNERS: updated}
        return ts.replace(learner=learner, sgd_steps=ts.sgd_steps + 1), metrics

    def training_step(self, ts: TrainState, _=None) -> tuple[TrainState, dict]:
        # offline: the buffer holds the fixed data; the phase is only its SGD steps
        ts, collect_metrics = (ts, {}) if self.cfg.offline else self.collect(ts, random_actions=False)
        key, k_sgd = jax.random.split(ts.key)
        ts = ts.replace(key=key)
        n, t = self.cfg.sgd_steps_per_training_step, self.cfg.train
        if t.sampling == "window":
            # The paper's phase: one window per env, its transitions in batches without replacement.
            k_sgd, k_windows = jax.random.split(k_sgd)
            windows = replay.draw_windows(ts.buffer, k_windows, self.cfg.env.episode_length, n, t.batch_size)

            def step(ts, xs):
                key, picks = xs
                return self.sgd_step(ts, key, windows.replace(picks=picks))

            ts, sgd_metrics = jax.lax.scan(step, ts, (jax.random.split(k_sgd, n), windows.picks))
        else:
            ts, sgd_metrics = jax.lax.scan(self.sgd_step, ts, jax.random.split(k_sgd, n))
        # The mean over the steps that report a metric (an agent reports NaN for a step it skips,
        # e.g. TD3's delayed actor); NaN only where no step reports it.
        return ts, {**jax.tree.map(_mean_reported, sgd_metrics), **collect_metrics}

    # -- phases (each one compiled program) ----------------------------------------------

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
    def prefill(self, ts: TrainState) -> TrainState:
        """`prefill_unrolls` unrolls of random actions, or of the (untrained) stochastic actor."""
        random_actions = self.cfg.train.prefill_policy == "random"
        if self.cfg.offline:  # the fixed data is the buffer
            return self._shard(ts)

        def body(ts, _):
            return self.collect(ts, random_actions=random_actions)[0], None

        return self._shard(jax.lax.scan(body, ts, None, length=self.cfg.train.prefill_unrolls)[0])

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
    def train_phase(self, ts: TrainState) -> tuple[TrainState, dict, jax.Array]:
        """One update phase (collect an unroll, then its SGD steps) as one compiled program;
        returns the new state, the phase's metrics, and whether every learned parameter is
        still finite (the non-finite guard's input). The loop runs
        `Config.training_steps_per_epoch` of these per epoch and checks for a stop request
        between them, so a stop never waits for a whole epoch."""
        ts, metrics = self.training_step(ts)
        learned = (self.params(ts), self.learner_params(ts))
        params_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(learned)]))
        return self._shard(ts), metrics, params_finite

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
    def end_epoch(self, ts: TrainState) -> TrainState:
        return self._shard(ts.replace(epoch=ts.epoch + 1))

    def eval_key(self, key_eval: jax.Array, epoch: int) -> jax.Array:
        """The evaluation key of an epoch (the run's evaluation key folded with the epoch)."""
        return jax.random.fold_in(key_eval, epoch)

    @functools.partial(jax.jit, static_argnums=0)
    def evaluate(self, actor_params, key: jax.Array, learner_actor_params: dict | None = None) -> dict:
        """The evaluation metrics of the run's policy, then `<learner>/<metric>` of each
        learner's (`learner_actor_params`), all on the same episodes (the same key)."""
        t = self.cfg.train
        length = self.cfg.env.episode_length
        out = evaluate(self.eval_env, self.policy_deterministic, actor_params, key, t.num_eval_envs, length)
        for name, agent in self.learners.items() if learner_actor_params is not None else ():
            theirs = evaluate(self.eval_env, lambda p, s, g, k=None, a=agent: a.act(p, s, g),
                              learner_actor_params[name], key, t.num_eval_envs, length)
            out.update({f"{name}/{k}": v for k, v in theirs.items()})
        return out
