"""Per-epoch metrics to TensorBoard (tensorboardX) and to metrics.csv."""

from __future__ import annotations

import csv
import math
import os
import pathlib


class MetricsLogger:
    """Writes one row per epoch; the CSV header is fixed by the first row."""

    def __init__(self, run_dir: pathlib.Path, tensorboard: bool = True, csv_file: bool = True, purge_step=None):
        """`purge_step`: on a resume, TensorBoard hides events at steps >= it (the epochs
        logged after the checkpoint, which are about to be logged again)."""
        self.run_dir = pathlib.Path(run_dir)
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), flush_secs=10, purge_step=purge_step)
        self.csv_path = self.run_dir / "metrics.csv" if csv_file else None
        self._fields: list[str] | None = None

    def log(self, step: int, row: dict[str, float]) -> None:
        """`row` maps 'train/...' and 'eval/...' names (and counters) to floats."""
        if self.writer is not None:
            for name, value in row.items():
                if "/" in name:
                    self.writer.add_scalar(name, value, global_step=step)
            self.writer.flush()
        if self.csv_path is not None:
            if self._fields is None:
                self._fields = list(row)
                if not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
                    with open(self.csv_path, "a", newline="") as f:
                        csv.writer(f).writerow(self._fields)
                else:  # resuming: keep the existing column order
                    with open(self.csv_path, newline="") as f:
                        self._fields = next(csv.reader(f))
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(
                    {k: _fmt(row.get(k, math.nan)) for k in self._fields}
                )
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
