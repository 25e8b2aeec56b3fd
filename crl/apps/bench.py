"""`crl-bench`: where the time of deep CRL goes, on this machine, in one run.

    crl-bench --quick                 # a few minutes on a 2-core CPU
    crl-bench --out docs/benchmarks/crl_bench_cpu.json

Sections (each a table; all rows go to one JSON file):

  ceiling   a large float32 matmul through JAX: the FLOP/s the update is compared with
  update    one critic+actor+alpha update (Trainer.update) per depth and batch: compile
            time, time per update, achieved FLOP/s and its ratio to the ceiling
  collect   raw vectorised env stepping vs the trainer's collection phase (actor forward,
            env step, buffer insert) for the same env and number of envs
  buffer    insert and sample+relabel time at 1k and 10k steps per env
  training  end-to-end env steps/s of a standard config, and the split of a training
            step between collection, sampling+relabelling and SGD
  agents    one SGD step of each agent (crl, sac+her, td3+her, gcsl) at depths 4, 16, 64
            (width 256, batch 256): time per step and FLOP/s (counts: agent_update_flops)
  memory    XLA's planned peak (temporaries + arguments) of a depth-1024 update with and
            without per-block rematerialisation

FLOP count of an update (multiply-adds x 2; backward = 2 x forward): critic step = both
encoders forward and backward (3F each); actor step = actor 3F + phi(s, a) forward and
backward to its action input (2F) + psi(g) forward (F). F of an MLP = 2 B sum(in x out).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp

from crl import buffer as replay
from crl.config import from_dict
from crl.run import build_envs
from crl.train import Trainer, TrainState

# The ant tasks' sizes (state 29, goal 2, action 8) so update numbers transfer to them.
STATE_DIM, GOAL_DIM, ACTION_SIZE = 29, 2, 8


def machine_info() -> dict:
    """What every benchmark JSON records about where it ran (load shows contention)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "jax_devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
    }


def _time(fn, *args, repeats: int, rounds: int = 3) -> float:
    """Seconds per call: the fastest of `rounds` means over `repeats` calls (after one warm-up).

    The minimum over rounds filters out other processes' bursts on a shared machine."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def _time_threaded(step, state, repeats: int, rounds: int = 3):
    """Like `_time` for `state = step(state)` with the state donated (updated in place, as
    in training): returns (seconds per call, final state)."""
    state = step(state)
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            state = step(state)
        jax.block_until_ready(state)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best, state


# -- ceiling -----------------------------------------------------------------------------


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> dict:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    seconds = _time(mm, a, b, repeats=repeats)
    return {"section": "ceiling", "n": n, "seconds": seconds, "flops": 2 * n**3 / seconds}


# -- update ------------------------------------------------------------------------------


def mlp_forward_flops(batch: int, in_dim: int, width: int, depth: int, out_dim: int) -> int:
    return 2 * batch * (in_dim * width + depth * width * width + width * out_dim)


def update_flops(batch: int, width: int, depth: int, repr_dim: int = 64) -> int:
    sa = mlp_forward_flops(batch, STATE_DIM + ACTION_SIZE, width, depth, repr_dim)
    g = mlp_forward_flops(batch, GOAL_DIM, width, depth, repr_dim)
    actor = mlp_forward_flops(batch, STATE_DIM + GOAL_DIM, width, depth, 2 * ACTION_SIZE)
    return 3 * sa + 3 * g + 3 * actor + 2 * sa + g


class _SizesOnly:
    """The sizes the trainer reads; Trainer.update never steps an env."""

    def __init__(self, env):
        self.spec = env.spec
        self.reset, self.step = env.reset, env.step
        self.state_dim, self.goal_indices, self.action_size = STATE_DIM, tuple(range(GOAL_DIM)), ACTION_SIZE
        self.episode_length = env.episode_length


def update_setup(depth: int, width: int, batch: int, scan: bool = True, remat: bool = False, dtype: str = "float32",
                 network: dict | None = None, agent: dict | None = None):
    """(jitted update, TrainState, Batch, key) for a synthetic batch of the ant's sizes;
    `agent`: the agent's settings ({"name": "sac", "her": True}; default CRL)."""
    cfg = from_dict(
        {
            "agent": agent or {},
            "network": {"depth": depth, "width": width, "actor_depth": depth, "critic_depth": depth,
                        "actor_width": width, "critic_width": width, "scan_blocks": scan, "remat": remat,
                        "dtype": dtype, **(network or {})},
            "train": {"batch_size": batch, "num_envs": 1, "buffer_size": 200, "unroll_length": 10,
                      "num_eval_envs": 1, "total_env_steps": 100, "num_epochs": 1, "prefill_steps": max(batch, 10)},
            "env": {"episode_length": 20},
        }
    )
    env, _ = build_envs(cfg)
    trainer = Trainer(cfg, _SizesOnly(env))
    learner = jax.jit(trainer.init_learner)(jax.random.PRNGKey(0))
    ts = TrainState(learner=learner, buffer=None, env_state=None, episode_ids=None, key=None,
                    env_steps=jnp.zeros((), jnp.int32), sgd_steps=jnp.zeros((), jnp.int32),
                    epoch=jnp.zeros((), jnp.int32))
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    data = replay.Batch(
        state=jax.random.normal(k[0], (batch, STATE_DIM)),
        action=jax.random.uniform(k[1], (batch, ACTION_SIZE), minval=-1, maxval=1),
        goal=jax.random.normal(k[2], (batch, GOAL_DIM)),
        offset=jnp.ones((batch,), jnp.int32),
        horizon=jnp.ones((batch,), jnp.int32),
        episode_id=jnp.zeros((batch,), jnp.int32),
        goal_episode_id=jnp.zeros((batch,), jnp.int32),
        next_state=jax.random.normal(k[0], (batch, STATE_DIM)) + 0.1,
        reward=(jax.random.uniform(k[2], (batch,)) < 0.1).astype(jnp.float32),
        relabelled=jnp.ones((batch,), bool),
    )
    return jax.jit(trainer.update, donate_argnums=0), ts, data, k[3]


def bench_update(depth: int, width: int, batch: int, repeats: int, ceiling: float, scan: bool = True,
                 dtype: str = "float32", rounds: int = 3) -> dict:
    step, ts, data, key = update_setup(depth, width, batch, scan=scan, dtype=dtype)
    t0 = time.perf_counter()
    compiled = step.lower(ts, data, key).compile()
    compile_s = time.perf_counter() - t0
    seconds, (ts, m) = _time_threaded(lambda out: compiled(out[0], data, key), (ts, None), repeats, rounds)
    flops = update_flops(batch, width, depth) / seconds
    return {"section": "update", "depth": depth, "width": width, "batch": batch,
            "blocks": "scan" if scan else "unrolled", "dtype": dtype, "compile_s": compile_s,
            "update_s": seconds, "update_ms": 1e3 * seconds, "flops": flops, "ceiling_ratio": flops / ceiling,
            "finite": bool(jnp.isfinite(m["critic_loss"]))}


def agent_update_flops(agent: str, batch: int, width: int, depth: int, policy_delay: int = 2) -> float:
    """FLOPs of one SGD step of `agent` (a key of AGENT_SETTINGS), counted as `update_flops`
    counts CRL's (backward = 2 x forward). Q = one Q network on (s, a, g), A = the actor.
    SAC: critic step 2 x 3Q (twins) + A (next action) + 2Q (target twins); actor step
    3A + 2 x 2Q (twins to the action input). TD3: critic step 6Q + A + 2Q; the actor step
    3A + 2Q (Q_1 only) every `policy_delay` steps. GCSL: 3A."""
    q = mlp_forward_flops(batch, STATE_DIM + ACTION_SIZE + GOAL_DIM, width, depth, 1)
    stochastic = mlp_forward_flops(batch, STATE_DIM + GOAL_DIM, width, depth, 2 * ACTION_SIZE)
    deterministic = mlp_forward_flops(batch, STATE_DIM + GOAL_DIM, width, depth, ACTION_SIZE)
    if agent == "crl":
        return update_flops(batch, width, depth)
    if agent.startswith("sac"):
        return 8 * q + stochastic + 3 * stochastic + 4 * q
    if agent.startswith("td3"):
        return 8 * q + deterministic + (3 * deterministic + 2 * q) / policy_delay
    if agent == "gcsl":
        return 3 * stochastic
    raise ValueError(f"agent_update_flops: unknown agent {agent!r}")


AGENT_SETTINGS = {"crl": {"name": "crl"}, "sac+her": {"name": "sac", "her": True},
                  "td3+her": {"name": "td3", "her": True}, "gcsl": {"name": "gcsl"}}


def bench_agent_update(agent: str, depth: int, width: int, batch: int, repeats: int, ceiling: float,
                       rounds: int = 3) -> dict:
    """One SGD step of `agent` (a key of AGENT_SETTINGS): compile time, time per step, and
    FLOP/s from `agent_update_flops` (XLA's own cost analysis counts a scanned loop body
    once, whatever the depth, so it cannot count deep networks)."""
    step, ts, data, key = update_setup(depth, width, batch, agent=AGENT_SETTINGS[agent])
    t0 = time.perf_counter()
    compiled = step.lower(ts, data, key).compile()
    compile_s = time.perf_counter() - t0
    flop_count = agent_update_flops(agent, batch, width, depth)
    seconds, (ts, m) = _time_threaded(lambda out: compiled(out[0], data, key), (ts, None), repeats, rounds)
    return {"section": "agents", "agent": agent, "depth": depth, "width": width, "batch": batch,
            "compile_s": compile_s, "update_s": seconds, "update_ms": 1e3 * seconds, "flop_count": flop_count,
            "flops": flop_count / seconds, "ceiling_ratio": flop_count / seconds / ceiling,
            "finite": bool(all(jnp.isfinite(v) | jnp.isnan(v) for v in jax.tree.leaves(m)))}


def update_memory(depth: int, width: int, batch: int, remat: bool) -> dict:
    step, ts, data, key = update_setup(depth, width, batch, remat=remat)
    mem = step.lower(ts, data, key).compile().memory_analysis()
    temp = int(getattr(mem, "temp_size_in_bytes", 0))
    args = int(getattr(mem, "argument_size_in_bytes", 0))
    return {"section": "memory", "depth": depth, "width": width, "batch": batch, "remat": remat,
            "temp_bytes": temp, "argument_bytes": args, "peak_bytes": temp + args,
            "temp_gib": temp / 2**30, "argument_gib": args / 2**30, "peak_gib": (temp + args) / 2**30}


# -- collection, buffer, training step ---------------------------------------------------


def _trainer(env_id: str, num_envs: int, depth: int = 4, width: int = 256, batch: int = 256,
             buffer_size: int = 2000, unroll: int = 50, utd: float = 1 / 32, episode_length: int | None = None):
    base = {"env": {"id": env_id}}
    if episode_length:
        base["env"]["episode_length"] = episode_length
    cfg = from_dict({
        **base,
        "network": {"depth": depth, "actor_depth": depth, "critic_depth": depth,
                    "width": width, "actor_width": width, "critic_width": width},
        "train": {"num_envs": num_envs, "batch_size": batch, "buffer_size": buffer_size, "unroll_length": unroll,
                  "utd_ratio": utd, "total_env_steps": num_envs * unroll, "num_epochs": 1,
                  "prefill_steps": max(unroll, -(-batch // num_envs))},
    })
    env, eval_env = build_envs(cfg)
    return Trainer(cfg, env, eval_env)


def bench_collect(env_id: str, num_envs: int, repeats: int) -> list[dict]:
    trainer = _trainer(env_id, num_envs)
    unroll = trainer.cfg.train.unroll_length
    ts = trainer.init(jax.random.PRNGKey(0))
    tenv = trainer.train_env

    @jax.jit
    def raw(env_state, key):
        def body(s, k):
            a = jax.random.uniform(k, (num_envs, trainer.action_size), minval=-1, maxval=1)
            s = tenv.step(s, a)
            return s, s.reward

        return jax.lax.scan(body, env_state, jax.random.split(key, unroll))

    collect = jax.jit(lambda ts: trainer.collect(ts, random_actions=False)[0], donate_argnums=0)
    key = jax.random.PRNGKey(1)
    jax.block_until_ready(raw(ts.env_state, key))
    ts = collect(ts)
    jax.block_until_ready(ts)
    # Raw stepping and collection run in turns, so that load on the machine hits both
    # alike (their ratio is the result); the fastest round of each counts.
    raw_s = collect_s = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = raw(ts.env_state, key)
        jax.block_until_ready(out)
        raw_s = min(raw_s, (time.perf_counter() - t0) / repeats)
        t0 = time.perf_counter()
        for _ in range(repeats):
            ts = collect(ts)  # the state is donated: the buffer is updated in place
        jax.block_until_ready(ts)
        collect_s = min(collect_s, (time.perf_counter() - t0) / repeats)
    steps = num_envs * unroll
    return [{"section": "collect", "env": env_id, "num_envs": num_envs, "raw_steps_per_s": steps / raw_s,
             "collect_steps_per_s": steps / collect_s, "collect_over_raw_time": collect_s / raw_s}]


def bench_buffer(num_envs: int, batch: int, repeats: int) -> list[dict]:
    rows = []
    unroll, state_dim, episode_length = 50, STATE_DIM, 1000
    for capacity in (1000, 10_000):
        cap = replay.capacity_rows(capacity, unroll)
        buf = replay.init(cap, num_envs, state_dim, ACTION_SIZE)
        states = jnp.ones((unroll, num_envs, state_dim))
        actions = jnp.ones((unroll, num_envs, ACTION_SIZE))
        ids = jnp.zeros((unroll, num_envs), jnp.int32)
        insert = jax.jit(replay.insert, donate_argnums=0)
        insert_s, buf = _time_threaded(lambda b: insert(b, states, actions, ids), buf, repeats * 4)
        sample = jax.jit(lambda b, k: replay.sample(b, k, batch, 0.99, (0, 1), episode_length))
        sample_s = _time(sample, buf, jax.random.PRNGKey(0), repeats=repeats)
        rows.append({"section": "buffer", "capacity_per_env": capacity, "num_envs": num_envs, "batch": batch,
                     "buffer_mb": cap * num_envs * (state_dim + ACTION_SIZE + 1) * 4 / 2**20,
                     "insert_s": insert_s, "sample_relabel_s": sample_s,
                     "insert_ms": 1e3 * insert_s, "sample_relabel_ms": 1e3 * sample_s})
    return rows


def bench_training(env_id: str, num_envs: int, depth: int, repeats: int, rounds: int = 3) -> list[dict]:
    trainer = _trainer(env_id, num_envs, depth=depth)
    t = trainer.cfg.train
    ts = trainer.prefill(trainer.init(jax.random.PRNGKey(0)))
    step = jax.jit(lambda ts: trainer.training_step(ts)[0], donate_argnums=0)
    total, ts = _time_threaded(step, ts, repeats, rounds)
    collect = jax.jit(lambda ts: trainer.collect(ts, random_actions=False)[0], donate_argnums=0)
    collect_s, ts = _time_threaded(collect, ts, repeats, rounds)
    n_sgd = trainer.cfg.sgd_steps_per_training_step
    sample = jax.jit(lambda b, k: replay.sample(b, k, t.batch_size, t.discount, trainer.goal_indices,
                                                trainer.cfg.env.episode_length))
    sample_s = _time(sample, ts.buffer, jax.random.PRNGKey(0), repeats=repeats, rounds=rounds) * n_sgd
    batch = sample(ts.buffer, jax.random.PRNGKey(0))
    update = jax.jit(lambda ts: trainer.update(ts, batch, jax.random.PRNGKey(0))[0], donate_argnums=0)
    update_s, ts = _time_threaded(update, ts, repeats, rounds)
    update_s *= n_sgd
    parts = collect_s + sample_s + update_s
    return [{"section": "training", "env": env_id, "num_envs": num_envs, "depth": depth,
             "sgd_steps_per_training_step": n_sgd, "training_step_s": total,
             "env_steps_per_s": t.env_steps_per_training_step / total,
             "fraction_collect": collect_s / parts, "fraction_sample_relabel": sample_s / parts,
             "fraction_sgd": update_s / parts}]


# -- the command -------------------------------------------------------------------------


def _print(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    print("  " + " ".join(f"{h:>{len(h) if len(h) > 10 else 10}}" for h, _, _ in columns))
    for r in rows:
        cells = []
        for h, key, fmt in columns:
            w = len(h) if len(h) > 10 else 10
            v = r.get(key, "")
            cells.append(f"{format(v, fmt) if v != '' else '':>{w}}")
        print("  " + " ".join(cells), flush=True)


def main(argv=None) -> None:
    """The `crl-bench` command (returns None: console scripts exit with main's return value)."""
    run(argv)


def run(argv=None) -> dict:
    """Runs the sections chosen by the command-line arguments; returns what it writes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer depths and repeats (a few minutes on a CPU)")
    parser.add_argument("--env", nargs="+", default=["point_u_maze"],
                        help="env(s) for the collection and training sections (e.g. point_u_maze ant)")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--sections", nargs="+",
                        default=["ceiling", "update", "agents", "collect", "buffer", "training", "memory"])
    parser.add_argument("--agents", nargs="+", default=list(AGENT_SETTINGS), choices=list(AGENT_SETTINGS),
                        help="agents of the agents section")
    parser.add_argument("--agent-depths", nargs="+", type=int, default=[4, 16, 64],
                        help="depths of the agents section")
    parser.add_argument("--depths", nargs="+", type=int, default=None,
                        help="update depths (default: 4 16 64 1024 with --quick, else also 256)")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="update batch sizes (default: 256 with --quick, else 256 512)")
    parser.add_argument("--out", default="docs/benchmarks/crl_bench.json")
    args = parser.parse_args(argv)

    depths = args.depths or ([4, 16, 64, 1024] if args.quick else [4, 16, 64, 256, 1024])
    batches = args.batches or ([256] if args.quick else [256, 512])
    repeats = 3 if args.quick else 10
    rows: list[dict] = []
    ceiling = matmul_ceiling(repeats=repeats)
    rows.append(ceiling)
    _print("matmul ceiling (float32)", [ceiling], [("n", "n", "d"), ("GFLOP/s", "flops", ".3e")])

    if "update" in args.sections:
        upd = []
        for batch in batches:
            for depth in depths:
                reps = repeats if depth <= 64 else max(2, repeats // 3)
                upd.append(bench_update(depth, 256, batch, reps, ceiling["flops"]))
        rows += upd
        _print("update (width 256)", upd, [("depth", "depth", "d"), ("batch", "batch", "d"),
                                           ("compile s", "compile_s", ".2f"), ("update ms", "update_ms", ".1f"),
                                           ("FLOP/s", "flops", ".3e"), ("of ceiling", "ceiling_ratio", ".2f")])
    if "agents" in args.sections:
        ag = [bench_agent_update(agent, depth, 256, 256, repeats, ceiling["flops"])
              for agent in args.agents for depth in args.agent_depths]
        rows += ag
        _print("one SGD step per agent (width 256, batch 256)", ag,
               [("agent", "agent", ""), ("depth", "depth", "d"), ("compile s", "compile_s", ".2f"),
                ("update ms", "update_ms", ".1f"), ("FLOP/step", "flop_count", ".3e"),
                ("FLOP/s", "flops", ".3e"), ("of ceiling", "ceiling_ratio", ".2f")])
    if "collect" in args.sections:
        col = [row for env_id in args.env for row in bench_collect(env_id, args.num_envs, repeats)]
        rows += col
        _print("collection", col, [("env", "env", ""), ("num_envs", "num_envs", "d"),
                                   ("raw steps/s", "raw_steps_per_s", ".0f"),
                                   ("collect steps/s", "collect_steps_per_s", ".0f"),
                                   ("collect/raw time", "collect_over_raw_time", ".2f")])
    if "buffer" in args.sections:
        buf = bench_buffer(args.num_envs, 256, repeats)
        rows += buf
        _print("buffer (batch 256)", buf, [("capacity/env", "capacity_per_env", "d"), ("MiB", "buffer_mb", ".1f"),
                                           ("insert ms", "insert_ms", ".3f"), ("sample ms", "sample_relabel_ms", ".3f")])
    if "training" in args.sections:
        tr = [row for env_id in args.env for depth in ([4] if args.quick else [4, 64])
              for row in bench_training(env_id, args.num_envs, depth, 1 if depth > 16 else max(2, repeats // 3),
                                        rounds=2 if depth > 16 else 3)]
        rows += tr
        _print("training step (64 envs, 50-step unroll, 100 SGD steps of batch 256)", tr,
               [("env", "env", ""), ("depth", "depth", "d"), ("env steps/s", "env_steps_per_s", ".0f"),
                ("step s", "training_step_s", ".2f"), ("collect", "fraction_collect", ".2f"),
                ("sample+relabel", "fraction_sample_relabel", ".2f"), ("sgd", "fraction_sgd", ".2f")])
    if "memory" in args.sections:
        # Compile-only (XLA's plan), so large batches cost nothing to add: activations grow
        # with the batch, parameters and Adam state do not.
        mem_batches = [256] if args.quick else [256, 512, 2048]
        mem = [update_memory(1024, 256, batch, remat) for batch in mem_batches for remat in (False, True)]
        rows += mem
        _print("depth-1024 update memory (width 256; XLA's plan)", mem,
               [("batch", "batch", "d"), ("remat", "remat", ""), ("temp GiB", "temp_gib", ".2f"),
                ("args GiB", "argument_gib", ".2f"), ("peak GiB", "peak_gib", ".2f")])
        for plain, remat in zip(mem[::2], mem[1::2]):
            print(f"  batch {plain['batch']}: remat cuts the temporaries {plain['temp_bytes'] / remat['temp_bytes']:.1f}x "
                  f"and the peak with parameters and Adam state {plain['peak_bytes'] / remat['peak_bytes']:.1f}x")

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine_info(), "quick": args.quick}
    result = {"meta": meta, "rows": rows}
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
