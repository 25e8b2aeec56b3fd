"""Env steps per second of the MJX arm tasks, as the trainer runs them.

For each id and number of vectorised envs, a jitted `lax.scan` of uniformly random
actions through `envs.wrappers.TrainingEnv` (vmap, truncation, auto-reset) is run once
to compile and warm up, then timed; the best of `--repeats` calls counts. Ids on one
scene variant (both push tasks) take their regions as data (`env.with_task`) and share
one program; reach, grasp and each bin-picking task compile their own.

    python experiments/bench_manipulation_envs.py                 # every id, 1/64/512 envs
    python experiments/bench_manipulation_envs.py --quick         # fewer steps per call
    python experiments/bench_manipulation_envs.py --ids arm_push_easy --num-envs 64

Prints a table and writes JSON (--out, default docs/benchmarks/manipulation_envs.json).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from envs.manipulation import ENV_IDS, make  # noqa: E402
from envs.manipulation.mjcf import CONTROL_DT, FRAME_SKIP  # noqa: E402
from crl.apps.env_bench import rollout_programs, time_rollout, write_report  # noqa: E402

STEP_BUDGET = 4096  # env steps per timed call, spread over the vectorised envs


def steps_per_call(num_envs: int, quick: bool) -> int:
    budget = STEP_BUDGET // 4 if quick else STEP_BUDGET
    return max(4, min(200, budget // num_envs))


_PROGRAMS: dict = {}


def measure(env_id: str, num_envs: int, quick: bool, repeats: int) -> dict:
    env = make(env_id)
    length = steps_per_call(num_envs, quick)
    key = (env.task.scene, num_envs, length)  # ids on one scene share a program
    if key not in _PROGRAMS:
        _PROGRAMS[key] = rollout_programs(env, num_envs, length)
    timing = time_rollout(_PROGRAMS[key], env.task_data, repeats)
    steps = num_envs * length
    return {
        "env_id": env_id,
        "num_envs": num_envs,
        "steps_per_call": steps,
        "seconds": timing["seconds"],
        "env_steps_per_second": steps / timing["seconds"],
        "physics_substeps_per_second": steps * FRAME_SKIP / timing["seconds"],
        "sim_seconds_per_wall_second": steps * CONTROL_DT / timing["seconds"],
        "first_call_seconds": timing["first_call_seconds"],
        "finite": timing["finite"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", default=",".join(ENV_IDS), help="comma-separated env ids")
    parser.add_argument("--num-envs", default="1,64,512", help="comma-separated batch sizes")
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps per call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "manipulation_envs.json"))
    args = parser.parse_args(argv)

    ids = [i for i in args.ids.split(",") if i]
    sizes = [int(n) for n in args.num_envs.split(",") if n]
    for env_id in ids:  # fail on a bad id before compiling anything
        make(env_id)

    header = f"{'env id':<20}{'envs':>6}{'steps/s':>10}{'substeps/s':>12}{'sim s/s':>9}{'first call s':>14}"
    print(header)
    print("-" * len(header))
    rows = []
    for n in sizes:  # batch size outermost: one compile, then every id reuses it
        for env_id in ids:
            row = measure(env_id, n, args.quick, args.repeats)
            rows.append(row)
            flag = "" if row["finite"] else "  NON-FINITE"
            print(f"{env_id:<20}{n:>6}{row['env_steps_per_second']:>10,.0f}"
                  f"{row['physics_substeps_per_second']:>12,.0f}{row['sim_seconds_per_wall_second']:>9.1f}"
                  f"{row['first_call_seconds']:>14.1f}{flag}", flush=True)

    write_report(args.out, "manipulation env steps per second (MJX via Brax, TrainingEnv, random actions)",
                 args.quick, rows, control_dt=CONTROL_DT, frame_skip=FRAME_SKIP)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
