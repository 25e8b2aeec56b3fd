"""Env steps per second of the Brax locomotion envs, as the trainer runs them.

For each training id and each number of vectorised envs, a jitted `lax.scan` of random
actions through `envs.wrappers.TrainingEnv` (vmap, truncation and auto-reset included)
is compiled once, run once to warm up, then timed; the best of `--repeats` runs counts.
Mazes of one robot share a compiled program (the maze is passed as data), so the compile
column is ~0 for the second and later mazes of a robot.

    python experiments/bench_locomotion_envs.py                  # every id, 1/64/512 envs
    python experiments/bench_locomotion_envs.py --quick          # fewer steps, 1/64 envs
    python experiments/bench_locomotion_envs.py --ids ant,humanoid_u_maze --backend mjx
    python experiments/bench_locomotion_envs.py --ids humanoid --params goal_in_state=false

Prints a table and writes JSON (--out, default docs/benchmarks/locomotion_envs.json).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crl.apps.env_bench import rollout_programs, time_rollout, write_report  # noqa: E402
from envs.locomotion import TRAINING_IDS, make  # noqa: E402

STEP_BUDGET = 8192  # env steps per timed call (spread over the vectorised envs)


def steps_per_call(num_envs: int, quick: bool) -> int:
    budget = STEP_BUDGET // 4 if quick else STEP_BUDGET
    return max(8, min(1000, budget // num_envs))


_PROGRAMS: dict = {}


def parse_params(text: str) -> dict:
    """'a=1,b=false' -> {'a': 1, 'b': False} (values read as YAML scalars)."""
    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in text.split(",") if item)}


def measure(env_id: str, backend: str, num_envs: int, quick: bool, repeats: int,
            params: dict | None = None) -> dict:
    env = make(env_id, backend=backend, **(params or {}))
    length = steps_per_call(num_envs, quick)
    key = (id(env.scene), num_envs, length)  # mazes of one scene share a program
    if key not in _PROGRAMS:
        _PROGRAMS[key] = rollout_programs(env, num_envs, length)
    timing = time_rollout(_PROGRAMS[key], env.task, repeats)
    return {
        "env_id": env_id,
        "backend": backend,
        **({"params": params} if params else {}),
        "num_envs": num_envs,
        "steps_per_call": num_envs * length,
        "seconds": timing["seconds"],
        "env_steps_per_second": num_envs * length / timing["seconds"],
        "first_call_seconds": timing["first_call_seconds"],
        "finite": timing["finite"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", default=",".join(TRAINING_IDS), help="comma-separated env ids")
    parser.add_argument("--num-envs", default=None, help="comma-separated (default 1,64,512; --quick 1,64)")
    parser.add_argument("--backend", default="spring", help="spring | generalized | positional | mjx")
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps; 1 and 64 envs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--params", default="", help="env parameters, e.g. goal_in_state=false")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "locomotion_envs.json"))
    args = parser.parse_args(argv)

    ids = [i for i in args.ids.split(",") if i]
    sizes = [int(n) for n in (args.num_envs or ("1,64" if args.quick else "1,64,512")).split(",")]
    # Fail before any compiling on a bad id or backend (one line naming the key).
    params = parse_params(args.params)
    for env_id in ids:
        make(env_id, backend=args.backend, **params)

    header = f"{'env id':<24}{'backend':<12}{'envs':>6}{'steps/s':>12}{'first call s':>14}"
    print(header)
    print("-" * len(header))
    rows = []
    for env_id in ids:
        for n in sizes:
            row = measure(env_id, args.backend, n, args.quick, args.repeats, params)
            rows.append(row)
            flag = "" if row["finite"] else "  NON-FINITE"
            print(f"{env_id:<24}{args.backend:<12}{n:>6}{row['env_steps_per_second']:>12,.0f}"
                  f"{row['first_call_seconds']:>14.1f}{flag}", flush=True)

    write_report(args.out, "locomotion env steps per second (TrainingEnv, random actions)", args.quick, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
