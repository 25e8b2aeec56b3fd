"""What the per-phase epoch loop (issue 24: a stop request is honoured after each update
phase) costs against one compiled scan over the epoch's phases, on issue 15's ant command.

    python experiments/bench_epoch_loop.py                      # depth 4, 3 alternating rounds
    python experiments/bench_epoch_loop.py --depth 64 --rounds 2 --out docs/benchmarks/epoch_loop_d64.json

Both run in one process on the same trainer and state: `scan` is one jitted `lax.scan` of
`Trainer.training_step` over the epoch's phases (the loop before issue 24); `phases` is
what `crl.loop` runs now: `Trainer.train_phase` per phase, each followed by the
`device_get` of its metrics. Each round times one epoch of each, after a warm-up epoch of
each; env steps per second of the epoch are reported (median, min, max over rounds).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_train_command import issue_config, machine_meta  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="docs/benchmarks/epoch_loop_d4.json")
    parser.add_argument("extra", nargs="*", help="further key=value overrides")
    args = parser.parse_args(argv)

    from crl.run import build_envs
    from crl.train import Trainer

    cfg = issue_config(args.depth, args.extra)
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    phases = cfg.training_steps_per_epoch
    env_steps = phases * cfg.train.env_steps_per_training_step

    scan_epoch = jax.jit(lambda ts: jax.lax.scan(trainer.training_step, ts, None, length=phases), donate_argnums=0)

    def run_scan(ts):
        ts, metrics = scan_epoch(ts)
        jax.device_get(metrics)
        return ts

    def run_phases(ts):
        for _ in range(phases):
            ts, metrics, finite = trainer.train_phase(ts)
            jax.device_get((metrics, finite))
        return ts

    kinds = {"scan": run_scan, "phases": run_phases}
    ts = trainer.prefill(trainer.init(jax.random.PRNGKey(0)))
    for run in kinds.values():  # compile and warm up
        ts = run(ts)
    rates = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for name, run in kinds.items():
            start = time.perf_counter()
            ts = run(ts)
            rates[name].append(env_steps / (time.perf_counter() - start))
    rows = [{"loop": k, "median": statistics.median(v), "min": min(v), "max": max(v), "runs": v} for k, v in rates.items()]
    print(f"depth {args.depth}: {phases} phases x {cfg.sgd_steps_per_training_step} SGD steps per epoch; env steps/s")
    print(f"{'loop':8s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for r in rows:
        print(f"{r['loop']:8s} {r['median']:8.0f} {r['min']:8.0f} {r['max']:8.0f}")
    result = {"depth": args.depth, "phases_per_epoch": phases, "sgd_steps_per_phase": cfg.sgd_steps_per_training_step,
              "env_steps_per_epoch": env_steps, "rows": rows, **machine_meta()}
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
