"""Publish a `+experiment=cpu_depth_threshold` sweep: figures, summary and a test copy.

    python experiments/cpu_depth_results.py multirun/cpu_depth_threshold/<time>

1. runs notebooks/depth_thresholds.ipynb headless on the sweep (nbclient, from the dev
   extra), writing its PNGs and summary.csv to --out (default docs/results/cpu_depth/);
2. copies each run's small files (config.yaml, metrics.csv, run_info.json; no checkpoints,
   no parameters) to --data (default tests/data/cpu_depth_sweep/), where
   tests/test_cpu_depth.py checks the critical-depth rule and summary.csv against them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL_FILES = ("config.yaml", "metrics.csv", "run_info.json")


def copy_metrics(sweep: pathlib.Path, data: pathlib.Path) -> int:
    """The sweep's runs with only their small files; returns how many runs were copied."""
    runs = sorted(p.parent for p in sweep.glob("*/metrics.csv"))
    if not runs:
        raise SystemExit(f"cpu_depth_results: no run (a folder with metrics.csv) in {sweep}")
    tmp = data.with_name(data.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for run in runs:
        (tmp / run.name).mkdir(parents=True)
        for name in SMALL_FILES:
            shutil.copy2(run / name, tmp / run.name / name)
    shutil.rmtree(data, ignore_errors=True)
    tmp.rename(data)  # all or nothing
    return len(runs)


def run_notebook(sweep: pathlib.Path, out: pathlib.Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(SWEEP_DIR=str(sweep.resolve()), OUT_DIR=str(out.resolve()))  # the kernel inherits them
    notebook = nbformat.read(REPO / "notebooks" / "depth_thresholds.ipynb", as_version=4)
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("text"):
                print(output["text"], end="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "results" / "cpu_depth")
    parser.add_argument("--data", type=pathlib.Path, default=REPO / "tests" / "data" / "cpu_depth_sweep")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"cpu_depth_results: sweep: {args.sweep} is not a directory", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    run_notebook(args.sweep, args.out)
    print(f"copied {copy_metrics(args.sweep, args.data)} runs' metrics to {args.data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
