"""End-to-end throughput of issue 15's ant command: `crl-train` run N times per code tree and depth.

    python experiments/bench_train_command.py                        # this tree, depth 4 and 64, 3 runs each
    python experiments/bench_train_command.py --trees /work/main .   # old and new code in turns
    python experiments/bench_train_command.py --depths 4 --runs 5 --out docs/benchmarks/train_command.json

The command is the paper code's ant configuration (64 envs, 62-step unrolls, 249 SGD steps
of batch 256 per unroll, 10,000-step buffer, 1,000 prefill steps, 1,000-step episodes):

    crl-train env=ant train.num_envs=64 train.num_epochs=2 train.total_env_steps=39680 network.depth=4 \\
      train.batch_size=256 train.num_eval_envs=64 train.utd_ratio=0.062752 train.prefill_steps=1000 \\
      train.buffer_size=10000 train.unroll_length=62 checkpoint.include_buffer=false logging.save_params=false

The number is epoch 2's `train/env_steps_per_second` in metrics.csv (epoch 1 includes
compilation; evaluation is outside the timed span). With several trees the runs alternate
(tree A, tree B, tree A, ...) so that load on a shared machine hits each alike; each run
records the 1-minute load average before it starts. Prints a table (median, min, max per
tree and depth) and writes every run to JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

ISSUE_OVERRIDES = (
    "env=ant", "train.num_envs=64", "train.num_epochs=2", "train.total_env_steps=39680",
    "train.batch_size=256", "train.num_eval_envs=64", "train.utd_ratio=0.062752", "train.prefill_steps=1000",
    "train.buffer_size=10000", "train.unroll_length=62", "checkpoint.include_buffer=false",
    "logging.save_params=false",
)

# conf/env/ant.yaml now selects the paper's schedule and data pipeline; the issue's command
# (utd_ratio for 249 SGD steps, total_env_steps after the prefill) is our pipeline, so a tree
# that has the options gets ours spelled out. The paper's pipeline does the same work with
# `--paper-pipeline`: 249 SGD steps (64 x 999 // 256) and 5 phases per epoch when the total
# counts the prefill (64,000 + 2 x 5 x 3,968 = 103,680).
OUR_PIPELINE = ("train.sgd_schedule=ratio", "train.reset_mode=fresh", "train.prefill_policy=random",
                "train.sampling=uniform", "train.update_order=critic_first")
PAPER_PIPELINE = ("train.sgd_schedule=paper", "train.reset_mode=first", "train.prefill_policy=actor",
                  "train.sampling=window", "train.update_order=actor_first", "train.total_env_steps=103680")


def has_pipeline_options(tree: pathlib.Path) -> bool:
    return "sgd_schedule" in (tree / "crl" / "config.py").read_text()


def overrides(depth: int, extra: list[str] = (), tree: pathlib.Path = REPO) -> list[str]:
    pipeline = OUR_PIPELINE if has_pipeline_options(tree) else ()
    return [*ISSUE_OVERRIDES, *pipeline, f"network.depth={depth}", *extra]


def issue_config(depth: int = 4, extra: list[str] = ()):
    """The `crl.config.Config` that `crl-train` builds from the issue's command (plus `extra`
    key=value overrides)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import crl.apps.train  # noqa: F401  registers the library's defaults with Hydra
    from crl.config import from_dict

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        dcfg = compose("config", overrides=overrides(depth, extra))
    return from_dict(OmegaConf.to_container(dcfg, resolve=True))


def machine_meta() -> dict:
    """Where a measurement ran (without importing the code under test: trees differ)."""
    import platform

    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0], "python": sys.version.split()[0]}


def epoch_rate(run_dir: pathlib.Path, epoch: int = 2) -> float:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if int(r["epoch"]) == epoch)
    return float(row["train/env_steps_per_second"])


def run_once(tree: pathlib.Path, depth: int, extra: list[str], timeout: float) -> dict:
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="crl_bench_cmd_")) / "run"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    entry = "crl.hydra_main" if (tree / "crl" / "hydra_main.py").exists() else "crl.apps.train"
    cmd = [sys.executable, "-c", f"from {entry} import main; main()", *overrides(depth, extra, tree),
           "logging.progress_bar=false", "logging.tensorboard=false", f"hydra.run.dir={run_dir}"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    # cwd outside every tree: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH
    proc = subprocess.run(cmd, env=env, cwd=run_dir.parent, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{tree} depth {depth}: crl-train exited {proc.returncode}: {proc.stderr[-1500:]}")
    return {"tree": str(tree), "depth": depth, "load_1min_before": load, "wall_s": wall,
            "env_steps_per_s": epoch_rate(run_dir), "run_dir": str(run_dir)}


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["tree"], r["depth"]), []).append(r)
    out = []
    for (tree, depth), rs in groups.items():
        rates = [r["env_steps_per_s"] for r in rs]
        loads = [r["load_1min_before"] for r in rs]
        out.append({"tree": tree, "depth": depth, "runs": len(rs), "median": statistics.median(rates),
                    "min": min(rates), "max": max(rates), "load_min": min(loads), "load_max": max(loads)})
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs="+", type=pathlib.Path, default=[REPO],
                        help="source trees to put on PYTHONPATH, run in turns (default: this one)")
    parser.add_argument("--depths", nargs="+", type=int, default=[4, 64])
    parser.add_argument("--runs", type=int, default=3, help="runs per tree and depth")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per crl-train run")
    parser.add_argument("--out", default="docs/benchmarks/train_command.json")
    parser.add_argument("--paper-pipeline", action="store_true",
                        help="the same work with the paper's schedule and data pipeline (issue 15 part 4)")
    parser.add_argument("extra", nargs="*", help="further key=value overrides for every run")
    args = parser.parse_args(argv)
    if args.paper_pipeline:
        args.extra = [*PAPER_PIPELINE, *args.extra]
    runs = []
    for depth in args.depths:
        for i in range(args.runs):
            for tree in args.trees:
                r = run_once(tree.resolve(), depth, args.extra, args.timeout)
                runs.append(r)
                print(f"  run {i + 1}/{args.runs} depth {depth} {r['tree']}: {r['env_steps_per_s']:.0f} env steps/s "
                      f"(load {r['load_1min_before']:.2f}, {r['wall_s']:.0f} s)", flush=True)
    table = summarise(runs)
    print(f"\n  {'tree':<30} {'depth':>5} {'runs':>4} {'median':>8} {'min':>8} {'max':>8} {'load':>11}")
    for s in table:
        print(f"  {s['tree']:<30} {s['depth']:>5} {s['runs']:>4} {s['median']:>8.0f} {s['min']:>8.0f} "
              f"{s['max']:>8.0f} {s['load_min']:>5.2f}-{s['load_max']:<5.2f}")
    result = {"meta": {**machine_meta(), "command": "crl-train " + " ".join(overrides(args.depths[0], args.extra))},
              "summary": table, "runs": runs}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
