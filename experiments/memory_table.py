"""The memory table of docs/memory.md: `crl-train --plan` over the paper's settings.

    python experiments/memory_table.py                       # about 30 minutes on a 2-core CPU
    python experiments/memory_table.py --only ant --out /tmp/ant.json
    python experiments/memory_table.py --resume                # plan only the rows not yet in --out

Each row is one job composed exactly as `crl-train` composes it (the task's conf/env
settings: 512 envs, 10,000 buffer steps per env, batch 512, the paper's pipeline), its
programs compiled for this machine's backend and measured by XLA's memory analysis
(crl/plan.py). Writes the rows as JSON and prints the markdown table for docs/memory.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from crl.apps import plan as plan_app
from crl.apps.overrides import compose_jobs
from crl.apps.train import CONF_DIR

DEPTHS = [4, 16, 64, 256, 1024]


def grid(env: str) -> list[list[str]]:
    rows = [[f"network.depth={d}"] for d in DEPTHS]
    if env == "humanoid":
        rows += [["network.actor_depth=512", "network.critic_depth=1024"]]  # the paper's 1024-layer run
        rows += [["network.depth=4", f"network.width={w}"] for w in (1024, 2048, 4096)]
        rows += [["network.depth=64", f"train.batch_size={b}"] for b in (256, 1024, 2048)]
        rows += [["network.depth=1024", "network.remat=true"], ["network.depth=1024", "network.dtype=bfloat16"],
                 ["network.depth=1024", "network.remat=true", "network.dtype=bfloat16"]]
    else:
        rows += [["network.depth=4", "network.width=4096"], ["network.depth=64", "train.batch_size=2048"]]
    return [[f"env={env}", *r] for r in rows]


def markdown(rows: list[dict]) -> str:
    head = ("| env | actor / critic depth | width | batch | remat | dtype | parameters (M) | buffer GiB | "
            "state GiB | update temporaries GiB | peak GiB |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['actor_depth']} / {r['critic_depth']} | {r['width']} | {r['batch_size']} | "
            f"{'yes' if r['remat'] else 'no'} | {r['dtype']} | {r['params_m']:.2f} | {r['buffer_gib']:.2f} | "
            f"{r['state_gib']:.2f} | {r['update_temp_gib']:.2f} | {r['peak_gib']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=["humanoid", "ant"])
    parser.add_argument("--out", default="docs/benchmarks/memory_plan_cpu.json")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --out; plan the rest")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    rows = json.loads(out.read_text()) if args.resume and out.exists() else []
    done = {r["overrides"] for r in rows}
    for env in args.only:
        for overrides in grid(env):
            if " ".join(overrides) in done:
                continue
            cfg = compose_jobs(str(CONF_DIR), overrides, multirun=False)[0].cfg
            row = plan_app.plan_row(cfg, None)
            row["overrides"] = " ".join(overrides)
            rows.append(row)
            print(f"{row['overrides']}: peak {row['peak_gib']:.2f} GiB ({row['compile_s']:.0f} s)", file=sys.stderr,
                  flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=2, default=str))  # after every row: a long run keeps its rows
    plan_app.print_table(rows)
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
