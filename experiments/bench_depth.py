"""Compile time and step time of one critic+actor update versus depth, scanned vs unrolled.

    python experiments/bench_depth.py                       # depths 4..1024, unrolled up to 256
    python experiments/bench_depth.py --unrolled-max-depth 1024   # many minutes on a CPU
    python experiments/bench_depth.py --depths 4 16 --out /tmp/depth.json

One update = critic InfoNCE step + actor step + temperature step on a batch of the ant's
sizes (`crl.apps.bench.bench_update`), width 256 and batch 256 by default. Prints a table and
writes JSON. `crl-bench` covers the rest of the training loop.
"""

from __future__ import annotations

import argparse
import json
import pathlib


from crl.apps.bench import bench_update, machine_info, matmul_ceiling


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

    ceiling = matmul_ceiling()["flops"]
    rows = []
    print(f"{'depth':>6} {'blocks':>9} {'compile s':>10} {'update ms':>10} {'of ceiling':>10}")
    for depth in args.depths:
        for scan in (True, False):
            if not scan and depth > args.unrolled_max_depth:
                continue
            repeats = args.repeats if depth < 256 else max(2, args.repeats // 2)
            row = bench_update(depth, args.width, args.batch, repeats, ceiling, scan=scan)
            rows.append(row)
            print(f"{depth:>6} {row['blocks']:>9} {row['compile_s']:>10.2f} {1e3 * row['update_s']:>10.1f}"
                  f" {row['ceiling_ratio']:>10.2f}", flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine_info(), "matmul_ceiling_flops": ceiling}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
