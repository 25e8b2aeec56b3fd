"""Compile time and step time of one critic+actor update versus depth, scanned vs unrolled.

    python experiments/bench_depth.py                       # depths 4..1024, unrolled up to 256
    python experiments/bench_depth.py --unrolled-max-depth 1024   # many minutes on a CPU
    python experiments/bench_depth.py --depths 4 16 --out /tmp/depth.json

One update = critic InfoNCE step + actor step + temperature step on a batch (the trainer's
`Trainer.update`), at width 256 and batch 256 by default. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp

from crl.buffer import Batch
from crl.config import from_dict
from crl.networks import param_count
from crl.run import build_envs
from crl.train import Trainer, TrainState

# Input sizes of the ant tasks (state 29, goal 2, action 8), so the numbers transfer.
STATE_DIM, GOAL_DIM, ACTION_SIZE = 29, 2, 8


class _ShapeOnlyEnv:
    """Just the sizes the trainer reads; the update never steps an env."""

    def __init__(self, base):
        self.spec = base.spec
        self.reset, self.step = base.reset, base.step
        self.state_dim, self.goal_indices, self.action_size = STATE_DIM, (0, 1), ACTION_SIZE
        self.episode_length = base.episode_length


def measure(depth: int, width: int, batch: int, scan: bool, repeats: int) -> dict:
    cfg = from_dict(
        {
            "network": {"depth": depth, "width": width, "actor_depth": depth, "critic_depth": depth,
                        "actor_width": width, "critic_width": width, "scan_blocks": scan},
            "train": {"batch_size": batch, "num_envs": 1, "buffer_size": 200, "unroll_length": 10,
                      "num_eval_envs": 1},
            "logging": {"progress_bar": False},
        }
    )
    env, _ = build_envs(cfg)
    trainer = Trainer(cfg, _ShapeOnlyEnv(env))
    # The update touches only the learner's fields; the buffer and env state are not needed.
    learner = jax.jit(trainer.init_learner)(jax.random.PRNGKey(0))
    ts = TrainState(**learner, buffer=None, env_state=None, episode_ids=None, key=None,
                    env_steps=jnp.zeros((), jnp.int32), sgd_steps=jnp.zeros((), jnp.int32),
                    epoch=jnp.zeros((), jnp.int32))
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    data = Batch(
        state=jax.random.normal(k[0], (batch, STATE_DIM)),
        action=jax.random.uniform(k[1], (batch, ACTION_SIZE), minval=-1, maxval=1),
        goal=jax.random.normal(k[2], (batch, GOAL_DIM)),
        offset=jnp.ones((batch,), jnp.int32),
        horizon=jnp.ones((batch,), jnp.int32),
        episode_id=jnp.zeros((batch,), jnp.int32),
        goal_episode_id=jnp.zeros((batch,), jnp.int32),
    )
    step = jax.jit(trainer.update, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(ts, data, k[0]).compile()
    compile_s = time.perf_counter() - t0
    ts, m = compiled(ts, data, k[0])  # warm-up
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for i in range(repeats):
        ts, m = compiled(ts, data, jax.random.fold_in(k[0], i))
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t0) / repeats
    return {
        "depth": depth, "width": width, "batch": batch, "blocks": "scan" if scan else "unrolled",
        "compile_s": compile_s, "update_s": step_s,
        "params": param_count(ts.actor_params) + param_count(ts.critic_params),
        "finite": bool(jnp.isfinite(m["critic_loss"])),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 16, 64, 256, 1024])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--unrolled-max-depth", type=int, default=256,
                        help="skip unrolled builds deeper than this (1024 unrolled compiles for many minutes)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/benchmarks/bench_depth.json")
    args = parser.parse_args(argv)

    rows = []
    print(f"{'depth':>6} {'blocks':>9} {'params':>11} {'compile s':>10} {'update ms':>10}")
    for depth in args.depths:
        for scan in (True, False):
            if not scan and depth > args.unrolled_max_depth:
                continue
            repeats = args.repeats if depth < 256 else max(2, args.repeats // 2)
            row = measure(depth, args.width, args.batch, scan, repeats)
            rows.append(row)
            print(f"{depth:>6} {row['blocks']:>9} {row['params']:>11,} {row['compile_s']:>10.2f} {1e3 * row['update_s']:>10.1f}",
                  flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
