"""`crl-export-data <run dir> <file.npz>`: a run's replay buffer (of its newest intact
checkpoint) as a dataset in OGBench's layout (crl/dataset.py), for `crl-train
train.dataset=<file.npz>` or OGBench-style tools. Never overwrites a file.

Exit codes: 0 written; 2 bad arguments or a run without a usable buffer (one line on stderr).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from crl import dataset as fixed_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crl-export-data", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory of ours (its newest intact checkpoint is read)")
    parser.add_argument("out", help="the .npz file to write (must not exist)")
    args = parser.parse_args(argv)
    try:
        run_dir = fixed_data.check_path(args.run_dir)
        if not run_dir.is_dir():
            raise fixed_data.DatasetError(f"run_dir: {args.run_dir!r} is not a run directory")
        if pathlib.Path(args.out).exists():
            raise fixed_data.DatasetError(f"out: {args.out!r} exists; give a new file name (files are never overwritten)")
        data = fixed_data.from_run(run_dir)
        out = fixed_data.write_npz(data, args.out)
    except fixed_data.DatasetError as err:
        print(f"crl-export-data: {err}", file=sys.stderr)
        return 2
    n, trajectories = data["observations"].shape[0], int(data["terminals"].sum())
    print(f"crl-export-data: wrote {n} transitions ({trajectories} trajectories) of {run_dir} to {out}")
    return 0


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
