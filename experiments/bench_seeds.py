"""Seeds in one program against the same seeds one after another: total wall time.

    python experiments/bench_seeds.py                                    # both settings, 3 seeds
    python experiments/bench_seeds.py --settings default --seeds 3 --out /tmp/seeds.json

For each setting, `crl-train` runs N seeds one after another (`seed=0`, `seed=1`, ...: what
a seed sweep does with one worker; they share one new JAX compilation cache, so the later
runs load the programs the first compiled) and then once with `seed=0 train.num_seeds=N`
(its own new cache). The time is the wall time of the whole commands: Python start,
imports, compilation, training, evaluation, checkpoints. Final time at goal per seed is
recorded beside it. Run it on an otherwise idle machine; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SETTINGS = {
    "default": [],  # crl-train's embedded default: point_u_maze, 64 envs, 64k env steps, depth 4
    # conf/experiment/cpu_depth_threshold.yaml at depth 4, one run (its sweep's grid removed)
    "cpu_depth_threshold_d4": ["env=point_u_maze", "env.eval_id=point_u_maze_eval", "network.width=64",
                               "network.depth=4", "train.num_envs=256", "train.total_env_steps=2000000",
                               "train.utd_ratio=0.0065"],
}


def _run(overrides: list[str], run_dir: pathlib.Path, cache: pathlib.Path) -> float:
    env = {**os.environ, "CRL_JAX_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "crl.apps.train", *overrides, "logging.progress_bar=false",
           f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return seconds


def _final(run_dir: pathlib.Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["eval/time_at_goal"])


def bench(name: str, seeds: int, work: pathlib.Path) -> dict:
    overrides = SETTINGS[name]
    load = os.getloadavg()[0]
    one_by_one, finals_seq = [], []
    for seed in range(seeds):
        run_dir = work / name / f"seq_{seed}"
        one_by_one.append(_run([*overrides, f"seed={seed}"], run_dir, work / name / "cache_seq"))
        finals_seq.append(_final(run_dir))
    run_dir = work / name / "batched"
    batched = _run([*overrides, "seed=0", f"train.num_seeds={seeds}"], run_dir, work / name / "cache_batched")
    finals_batched = [_final(run_dir / f"seed_{s}") for s in range(seeds)]
    return {"setting": name, "seeds": seeds, "overrides": overrides, "one_after_another_s": sum(one_by_one),
            "per_run_s": one_by_one, "batched_s": batched, "speedup": sum(one_by_one) / batched,
            "final_time_at_goal_one_after_another": finals_seq, "final_time_at_goal_batched": finals_batched,
            "load_average_1min_before": load}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="docs/benchmarks/seeds_cpu.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(name, args.seeds, pathlib.Path(tmp)) for name in args.settings]
    print(f"{'setting':<24} {'seeds':>5} {'one after another s':>20} {'batched s':>10} {'speedup':>8}")
    for r in rows:
        print(f"{r['setting']:<24} {r['seeds']:>5} {r['one_after_another_s']:>20.1f} {r['batched_s']:>10.1f} "
              f"{r['speedup']:>8.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
