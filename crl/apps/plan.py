"""`crl-train ... --plan`: the memory each job of a command needs, before any of it runs.

    crl-train env=humanoid network.depth=64 --plan
    crl-train -m network.depth=4,64,256 network.width=256,1024 network.remat=false,true --plan
    crl-train -m +experiment=main_table --plan --plan-json plan.json

Every job is composed and validated as `crl-train` would run it, then its programs are
compiled (nothing is allocated, nothing is trained or written but the optional JSON) and
XLA's memory analysis of them is printed per device (crl/plan.py says what each column
counts). Where the backend reports its memory (GPUs, TPUs) each row says whether it fits.
Each row also gives the disk its run's checkpoints take, and the last line the total of
all jobs (a sweep's runs all keep theirs).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from crl import plan as memplan
from crl.apps import enable_compilation_cache
from crl.config import Config
from crl.run import build_envs, load_inputs
from crl.train import Trainer

COLUMNS = [  # (header, key, format)
    ("env", "env", ""), ("agent", "agent", ""), ("actor d", "actor_depth", "d"), ("critic d", "critic_depth", "d"),
    ("width", "width", "d"), ("batch", "batch_size", "d"), ("envs", "num_envs", "d"), ("remat", "remat", ""),
    ("dtype", "dtype", ""), ("params M", "params_m", ".2f"), ("buffer GiB", "buffer_gib", ".3f"),
    ("state GiB", "state_gib", ".3f"), ("update temp GiB", "update_temp_gib", ".3f"),
    ("peak GiB", "peak_gib", ".3f"), ("fits", "fits", ""), ("ckpts disk GiB", "checkpoints_gib", ".2f"),
]


def plan_row(cfg: Config, limit: int | None) -> dict:
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env, *load_inputs(cfg, env))
    start = time.perf_counter()
    p = memplan.memory_plan(trainer)
    net, t = cfg.network, cfg.train
    g = memplan.GiB
    return {
        "env": cfg.env.id, "agent": cfg.agent.name, "actor_depth": net.actor_depth, "critic_depth": net.critic_depth,
        "width": net.width if net.actor_width == net.critic_width else f"{net.actor_width}/{net.critic_width}",
        "batch_size": t.batch_size, "num_envs": t.num_envs, "buffer_size": t.buffer_size, "remat": net.remat,
        "dtype": net.dtype, **p,
        "params_m": (p["actor_params"] + p["critic_params"]) / 1e6, "buffer_gib": p["buffer_bytes"] / g,
        "state_gib": p["state_bytes_per_device"] / g, "update_temp_gib": p["update_temp"] / g,
        "peak_gib": p["peak_bytes"] / g, "device_bytes": limit, "checkpoints_gib": p["checkpoints_bytes"] / g,
        "keep": cfg.checkpoint.keep, "include_buffer": cfg.checkpoint.include_buffer, "num_seeds": t.num_seeds,
        "fits": "?" if limit is None else ("yes" if p["peak_bytes"] <= limit else "NO"),
        "compile_s": time.perf_counter() - start,
    }


def _cell(value, fmt: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def print_table(rows: list[dict]) -> None:
    cells = [[h for h, _, _ in COLUMNS]] + [[_cell(r[k], f) for _, k, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def checkpoint_line(rows: list[dict]) -> str:
    """What the jobs' checkpoints take on disk, each and in all (crl.plan.checkpoint_sizes)."""
    total = sum(r["checkpoints_bytes"] for r in rows) / memplan.GiB
    peak = sum(r["checkpoints_peak_bytes"] for r in rows) / memplan.GiB
    kept = sorted({f"keep={r['keep']}" + ("" if r["include_buffer"] else " without the buffer") for r in rows})
    jobs = f"all {len(rows)} jobs" if len(rows) > 1 else "the job"
    return (f"ckpts disk = checkpoint.keep x the state ({', '.join(kept)}); {jobs}: {total:.2f} GiB on disk, "
            f"{peak:.2f} GiB while every job writes a save")


def run(configs: list[Config], json_path: str | None = None) -> list[dict]:
    enable_compilation_cache()  # the run then finds its update phase compiled
    limit = memplan.device_memory()
    rows = []
    for n, cfg in enumerate(configs):
        rows.append(plan_row(cfg, limit))
        print(f"planned {n + 1}/{len(configs)} in {rows[-1]['compile_s']:.1f} s", file=sys.stderr, flush=True)
    print_table(rows)
    where = "per device" + (f"; the device holds {limit / memplan.GiB:.2f} GiB" if limit else
                            "; this backend does not report its memory ('fits': ?)")
    print(f"\npeak = the largest program footprint (arguments + outputs - donated + XLA's temporaries) {where}")
    print(checkpoint_line(rows))
    if json_path:
        path = pathlib.Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(rows, indent=2, default=str))
        tmp.replace(path)
        print(f"wrote {path}")
    return rows
